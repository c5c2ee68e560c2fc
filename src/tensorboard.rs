//! TensorBoard event files: metrics.csv's figures as scalars, so that `tensorboard --logdir runs/`
//! shows every run and sweep trial side by side, as makemore.py's SummaryWriter does; the run's
//! hyper-parameters as the HParams plugin's session record, so that its dashboard compares a
//! sweep's runs; and the samples as the Text plugin's tables.
//!
//! An event file is a sequence of TFRecord frames (the length, its masked CRC-32C, an `Event`
//! protobuf, its masked CRC-32C). prost encodes the messages, declared below with the field
//! numbers of TensorFlow's `event.proto`, `summary.proto` and `tensor.proto` and TensorBoard's
//! `plugin_data.proto`; only the fields we write. (The `tboard` crate wraps the same but needs
//! `protoc` to build, which a newcomer's machine lacks.)

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use prost::Message;

/// `event.proto`'s Event: a file version (the first record) or a summary at a step.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `summary.proto`'s Summary.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// A scalar (`simple_value`), or a plugin's record (`metadata` saying whose, `tensor` its data).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(string, tag = "1")]
    pub tag: String,
    /// A member of a oneof in the schema: optional, so that a 0.0 is written and not left out.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<Tensor>,
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginData {
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `tensor.proto`'s TensorProto, for strings (the Text plugin) or an empty float tensor (the
/// HParams plugin's records, which carry everything in their metadata).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Tensor {
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<Shape>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Shape {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// `types.proto`'s DataType values.
const DT_FLOAT: i32 = 1;
const DT_STRING: i32 = 7;

/// The HParams plugin's data: here always a session's start (its hyper-parameters).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamsPluginData {
    #[prost(int32, tag = "1")]
    pub version: i32,
    #[prost(message, optional, tag = "3")]
    pub session_start_info: Option<SessionStartInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionStartInfo {
    #[prost(btree_map = "string, message", tag = "1")]
    pub hparams: BTreeMap<String, HParam>,
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

/// `google.protobuf.Value`, with the kinds a hyper-parameter takes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HParam {
    #[prost(oneof = "HParamKind", tags = "2, 3, 4")]
    pub kind: Option<HParamKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum HParamKind {
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    Text(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
}

impl HParam {
    /// A setting as the dashboard shows it: numbers as numbers (to plot against), lists and
    /// dates as their TOML text.
    fn of(value: &toml::Value) -> HParam {
        let kind = match value {
            toml::Value::Integer(i) => HParamKind::Number(*i as f64),
            toml::Value::Float(f) => HParamKind::Number(*f),
            toml::Value::Boolean(b) => HParamKind::Bool(*b),
            toml::Value::String(s) => HParamKind::Text(s.clone()),
            other => HParamKind::Text(other.to_string()),
        };
        HParam { kind: Some(kind) }
    }
}

/// Where TensorBoard's HParams plugin looks for a session's hyper-parameters.
pub const SESSION_START_TAG: &str = "_hparams_/session_start_info";

/// The name TensorBoard looks for ("tfevents"); one file per run.
const PREFIX: &str = "events.out.tfevents.";

/// A run's event file, open for appending.
pub struct EventFile {
    file: File,
    /// Records in the file, the file version included.
    pub records: usize,
}

impl EventFile {
    /// Opens the event file in `dir`, keeping its first `keep` records (all when `None`: what
    /// came after a checkpoint is written again when the run goes on from it), or creates one.
    pub fn open(dir: &Path, keep: Option<usize>) -> anyhow::Result<EventFile> {
        let found = find(dir);
        let records = match &found {
            Some(path) => read_records(path)?,
            None => Vec::new(),
        };
        let (path, records) = match found {
            Some(path) if !records.is_empty() => {
                let kept = truncate(&path, &records, keep)?;
                (path, kept)
            }
            // None yet, or killed before its first record was whole: the file version alone.
            found => (create(found, dir)?, 1),
        };
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(EventFile { file, records })
    }

    /// Appends one scalar at `step`.
    pub fn scalar(&mut self, tag: &str, step: usize, value: f64) -> anyhow::Result<()> {
        let value = Value {
            tag: tag.to_string(),
            simple_value: Some(value as f32),
            ..Value::default()
        };
        self.append(step, value)
    }

    /// Appends the HParams plugin's session record: every setting by its dotted key.
    pub fn hparams(&mut self, settings: &BTreeMap<String, toml::Value>) -> anyhow::Result<()> {
        let start = SessionStartInfo {
            hparams: (settings.iter())
                .map(|(key, value)| (key.clone(), HParam::of(value)))
                .collect(),
            start_time_secs: now(),
        };
        let data = HParamsPluginData {
            version: 0,
            session_start_info: Some(start),
        };
        let empty = Tensor {
            dtype: DT_FLOAT,
            shape: Some(Shape {
                dim: vec![Dim { size: 0 }],
            }),
            string_val: Vec::new(),
        };
        let value = plugin_value(SESSION_START_TAG, "hparams", data.encode_to_vec(), empty);
        self.append(0, value)
    }

    /// Appends a table for the Text plugin at `step`: one row per entry, its cells as columns.
    pub fn table<const N: usize>(
        &mut self,
        tag: &str,
        step: usize,
        rows: &[[&str; N]],
    ) -> anyhow::Result<()> {
        let tensor = Tensor {
            dtype: DT_STRING,
            shape: Some(Shape {
                dim: vec![
                    Dim {
                        size: rows.len() as i64,
                    },
                    Dim { size: N as i64 },
                ],
            }),
            string_val: rows
                .iter()
                .flatten()
                .map(|c| c.as_bytes().to_vec())
                .collect(),
        };
        // TextPluginData { version: 0 } encodes to no bytes.
        self.append(step, plugin_value(tag, "text", Vec::new(), tensor))
    }

    fn append(&mut self, step: usize, value: Value) -> anyhow::Result<()> {
        let summary = Summary { value: vec![value] };
        self.file
            .write_all(&frame(&event(step, What::Summary(summary))))?;
        self.records += 1;
        Ok(())
    }
}

fn plugin_value(tag: &str, plugin: &str, content: Vec<u8>, tensor: Tensor) -> Value {
    let plugin_data = PluginData {
        plugin_name: plugin.to_string(),
        content,
    };
    Value {
        tag: tag.to_string(),
        simple_value: None,
        tensor: Some(tensor),
        metadata: Some(SummaryMetadata {
            plugin_data: Some(plugin_data),
        }),
    }
}

/// The event file in `dir`, if there is one.
pub fn find(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(PREFIX))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Every scalar of the event file in `dir`: (tag, step, value).
pub fn scalars(dir: &Path) -> anyhow::Result<Vec<(String, i64, f32)>> {
    let values = values(dir)?.into_iter();
    let scalar = |(step, v): (i64, Value)| Some((v.tag, step, v.simple_value?));
    Ok(values.filter_map(scalar).collect())
}

/// Every summary value of the event file in `dir`, with its step.
pub fn values(dir: &Path) -> anyhow::Result<Vec<(i64, Value)>> {
    let Some(path) = find(dir) else {
        anyhow::bail!("no event file in {}", dir.display());
    };
    let mut out = Vec::new();
    for (event, _) in read_records(&path)? {
        if let Some(What::Summary(summary)) = event.what {
            out.extend(summary.value.into_iter().map(|v| (event.step, v)));
        }
    }
    Ok(out)
}

/// Writes the file version record to `path`, or to a new file in `dir`.
fn create(path: Option<PathBuf>, dir: &Path) -> anyhow::Result<PathBuf> {
    let seconds = chrono::Utc::now().timestamp();
    let path = path.unwrap_or_else(|| dir.join(format!("{PREFIX}{seconds}.makemore")));
    let version = frame(&event(0, What::FileVersion("brain.Event:2".into())));
    crate::files::write_atomic(&path, &version)?;
    Ok(path)
}

/// Keeps the first `keep` records of `path` (never fewer than the file version; all when
/// `None`), and no torn record after them.
/// `records` are the file's intact ones, at least one; returns how many were kept.
fn truncate(path: &Path, records: &[(Event, usize)], keep: Option<usize>) -> anyhow::Result<usize> {
    let kept = keep.map_or(records.len(), |k| k.clamp(1, records.len()));
    let end = records[kept - 1].1;
    let bytes = std::fs::read(path)?;
    if end < bytes.len() {
        crate::files::write_atomic(path, &bytes[..end])?;
    }
    Ok(kept)
}

/// Seconds since the Unix epoch.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn event(step: usize, what: What) -> Event {
    Event {
        wall_time: now(),
        step: step as i64,
        what: Some(what),
    }
}

/// One TFRecord frame holding `event`.
fn frame(event: &Event) -> Vec<u8> {
    let data = event.encode_to_vec();
    let length = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc(&length).to_le_bytes());
    out.extend_from_slice(&data);
    out.extend_from_slice(&masked_crc(&data).to_le_bytes());
    out
}

/// TFRecord's checksum: CRC-32C, rotated and offset so that a CRC of data holding CRCs stays
/// informative.
fn masked_crc(bytes: &[u8]) -> u32 {
    const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    CASTAGNOLI
        .checksum(bytes)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

/// The complete, intact records of `path`, each with the offset where it ends. A record cut
/// short by a kill ends the list.
fn read_records(path: &Path) -> anyhow::Result<Vec<(Event, usize)>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut records = Vec::new();
    let mut at = 0;
    while let Some((event, end)) = record_at(&bytes, at) {
        records.push((event, end));
        at = end;
    }
    Ok(records)
}

fn record_at(bytes: &[u8], at: usize) -> Option<(Event, usize)> {
    let word = |from: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            bytes.get(from..from + 4)?.try_into().ok()?,
        ))
    };
    let length_bytes = bytes.get(at..at + 8)?;
    if word(at + 8)? != masked_crc(length_bytes) {
        return None;
    }
    let length = usize::try_from(u64::from_le_bytes(length_bytes.try_into().ok()?)).ok()?;
    let data = bytes.get(at + 12..(at + 12).checked_add(length)?)?;
    if word(at + 12 + length)? != masked_crc(data) {
        return None;
    }
    Some((Event::decode(data).ok()?, at + 16 + length))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TFRecord's masked CRC-32C of a known input: CRC-32C("123456789") is 0xE3069283 (the
    /// check value of the Castagnoli polynomial); masked, ((crc >> 15) | (crc << 17)) +
    /// 0xA282EAD8 = 0xC78AB0E5 (worked by hand).
    #[test]
    fn the_checksum_is_tfrecords() {
        assert_eq!(masked_crc(b"123456789"), 0xC78A_B0E5);
    }

    #[test]
    fn scalars_read_back_zeros_included_and_a_torn_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = EventFile::open(dir.path(), None).unwrap();
        file.scalar("Loss/train", 10, 2.5).unwrap();
        file.scalar("lr", 10, 0.0).unwrap();
        assert_eq!(file.records, 3);
        let expected = vec![
            ("Loss/train".to_string(), 10, 2.5),
            ("lr".to_string(), 10, 0.0),
        ];
        assert_eq!(scalars(dir.path()).unwrap(), expected);

        // A kill in the middle of a record: the intact ones still read.
        let path = find(dir.path()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        assert_eq!(scalars(dir.path()).unwrap(), expected[..1]);

        // Going on from a checkpoint that had seen two records keeps those two.
        let mut file = EventFile::open(dir.path(), Some(2)).unwrap();
        file.scalar("lr", 10, 0.5).unwrap();
        let scalars = scalars(dir.path()).unwrap();
        assert_eq!(scalars[1], ("lr".to_string(), 10, 0.5));
        assert_eq!(scalars.len(), 2);
    }
}
