//! The run directory: the one place a run writes, laid out as the README documents it.
//!
//! Every file stays readable after a crash or `kill -9` at any moment: whole-file writes go to a
//! temporary file that is then renamed over the old one, and CSV and log lines are flushed as
//! they are written.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::Experiment;
use crate::files::{self, write_atomic};
use crate::generation::Metrics;
use crate::tensorboard::EventFile;

pub mod metrics;
mod summary;

pub use metrics::{Kind, MetricRow};
pub use summary::{Status, Summary, Weights, read_summary};

pub struct RunDir {
    path: PathBuf,
    /// Held for as long as this process writes the run (see `lock`).
    _lock: File,
    metrics: csv::Writer<File>,
    samples: File,
    log: File,
    events: EventFile,
    written: Written,
}

/// How much of metrics.csv and samples.txt a run has written, so that a checkpoint can say which
/// lines it covers: the final evaluation comes after the last checkpoint at the same step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub metric_rows: usize,
    pub sample_blocks: usize,
    /// Records of the TensorBoard event file (absent in checkpoints older than it).
    #[serde(default)]
    pub events: Option<usize>,
}

impl RunDir {
    /// Creates `<runs>/<name>/<UTC yyyymmdd-hhmmss>-<6 hex>/` holding `first`'s config.toml and
    /// summary.json. It appears whole (see `prepare`); a name already taken by a parallel
    /// launch is never shared: the rename fails and another name is drawn.
    pub fn create(runs: &Path, name: &str, first: First) -> anyhow::Result<Self> {
        let parent = runs.join(name);
        fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        remove_abandoned(&parent);
        let run_name = || {
            let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
            let suffix: u32 = rand::rng().random_range(0..1 << 24);
            format!("{stamp}-{suffix:06x}")
        };
        let partial = parent.join(format!(".{}{PARTIAL}", run_name()));
        let lock = prepare(&partial, first)?;
        let path = loop {
            let path = parent.join(run_name());
            match fs::rename(&partial, &path) {
                Ok(()) => break path,
                Err(_) if path.exists() => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()));
                }
            }
        };
        point_latest(&parent, &path);
        Self::open(path, lock, Written::default())
    }

    /// Creates the run directory `path` itself, holding `first`'s config.toml and summary.json;
    /// it must not exist, or be empty. The caller alone creates runs at `path` (a sweep's claim
    /// on its trial), so a half-made directory left beside it by a killed process is removed.
    pub fn create_at(path: &Path, first: First) -> anyhow::Result<Self> {
        let name = path.file_name().expect("a run directory has a name");
        let partial = path.with_file_name(format!(".{}{PARTIAL}", name.to_string_lossy()));
        if partial.exists() {
            fs::remove_dir_all(&partial)
                .with_context(|| format!("cannot remove {}", partial.display()))?;
        }
        let lock = prepare(&partial, first)?;
        fs::rename(&partial, path).with_context(|| format!("cannot create {}", path.display()))?;
        Self::open(path.to_path_buf(), lock, Written::default())
    }

    /// Opens an existing run to go on from a checkpoint at `step` that covers `written` of
    /// metrics.csv and samples.txt: what they hold beyond that came after the checkpoint and will
    /// be recomputed, so it is dropped. (A checkpoint that does not say is taken to cover every
    /// line up to its step.) `lock` is the run's, taken before anything was read for resuming.
    pub fn reopen(
        path: &Path,
        step: usize,
        written: Option<Written>,
        lock: File,
    ) -> anyhow::Result<Self> {
        let rows = metrics::read(path)?;
        let kept = written.map_or_else(
            || rows.iter().take_while(|r| r.step <= step).count(),
            |w| w.metric_rows.min(rows.len()),
        );
        write_atomic(&path.join(metrics::FILE), &metrics::to_csv(&rows[..kept])?)?;
        let sample_blocks = keep_samples(path, step, written)?;
        fs::create_dir_all(path.join("checkpoints"))?;
        let events = written.and_then(|w| w.events);
        let start = Written {
            metric_rows: kept,
            sample_blocks,
            events,
        };
        Self::open(path.to_path_buf(), lock, start)
    }

    /// Opens the run's files for appending, `written` of them there already; the event file
    /// keeps its first `written.events` records (all, when it does not say).
    fn open(path: PathBuf, lock: File, mut written: Written) -> anyhow::Result<Self> {
        let append = |file: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path.join(file))
        };
        let metrics_file = append(metrics::FILE)?;
        let fresh = metrics_file.metadata()?.len() == 0;
        let mut metrics = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(metrics_file);
        if fresh {
            metrics.write_record(metrics::HEADER)?;
            metrics.flush()?;
        }
        let mut events = EventFile::open(&path, written.events)?;
        if events.records == 1 {
            // A new event file starts with the run's settings, for the HParams dashboard.
            events.hparams(&read_config(&path)?.flatten())?;
        }
        written.events = Some(events.records);
        Ok(RunDir {
            _lock: lock,
            written,
            events,
            metrics,
            samples: append("samples.txt")?,
            log: append("train.log")?,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn checkpoint_path(&self, which: &str) -> PathBuf {
        self.path.join("checkpoints").join(format!("{which}.ckpt"))
    }

    pub fn write_config(&self, toml: &str) -> anyhow::Result<()> {
        write_atomic(&self.path.join("config.toml"), toml.as_bytes())
    }

    pub fn write_summary(&self, summary: &Summary) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(summary)?;
        let path = self.path.join("summary.json");
        let failed = |e: std::io::Error| anyhow::anyhow!("cannot write {}: {e}", path.display());
        match files::replace(&path, json.as_bytes()) {
            // A full disk has no room for a new copy beside the old one; the run must still be
            // able to say that it failed, and why.
            Err(e)
                if e.kind() == std::io::ErrorKind::StorageFull
                    && summary.status != Status::Running =>
            {
                files::overwrite(&path, json.as_bytes()).map_err(failed)
            }
            result => result.map_err(failed),
        }
    }

    /// The generation metrics in the event file: `Generation/<figure>` at `step` for the
    /// headline temperature, and `Frontier/<figure>` for each of the frontier's temperatures at
    /// "step" 100 × the temperature, so that TensorBoard draws each figure against it.
    pub fn generation(
        &mut self,
        step: usize,
        headline: Option<&Metrics>,
        frontier: &[Metrics],
    ) -> anyhow::Result<()> {
        for (name, figure) in headline.map(Metrics::figures).unwrap_or_default() {
            self.events
                .scalar(&format!("Generation/{name}"), step, figure.value)?;
        }
        for metrics in frontier {
            let at = (metrics.temperature * 100.0).round() as usize;
            for (name, figure) in metrics.figures() {
                self.events
                    .scalar(&format!("Frontier/{name}"), at, figure.value)?;
            }
        }
        self.written.events = Some(self.events.records);
        Ok(())
    }

    /// A row of metrics.csv, and its scalars in the event file.
    pub fn metric(&mut self, m: &MetricRow, kind: Kind) -> anyhow::Result<()> {
        self.metrics.serialize(m)?;
        self.metrics.flush()?;
        self.written.metric_rows += 1;
        match kind {
            Kind::Batch => {
                self.events.scalar("Loss/batch", m.step, m.loss)?;
                self.events.scalar("lr", m.step, m.lr)?;
                self.events.scalar("tokens_per_s", m.step, m.tokens_per_s)?;
            }
            Kind::Estimate => self
                .events
                .scalar(&format!("Loss/{}", m.split), m.step, m.loss)?,
            Kind::Final => self
                .events
                .scalar(&format!("Final/{}", m.split), m.step, m.loss)?,
        }
        self.written.events = Some(self.events.records);
        Ok(())
    }

    pub fn written(&self) -> Written {
        self.written
    }

    /// Samples drawn at `step`, each with its mark (in-train / in-test / new), in samples.txt
    /// and as a table in the event file.
    pub fn samples(&mut self, step: usize, samples: &[(String, &str)]) -> anyhow::Result<()> {
        let mut text = format!("# step {step}\n");
        for (item, mark) in samples {
            text.push_str(&format!("{item}\t{mark}\n"));
        }
        self.samples.write_all(text.as_bytes())?;
        self.written.sample_blocks += 1;
        let rows: Vec<[&str; 2]> = samples.iter().map(|(i, m)| [i.as_str(), *m]).collect();
        self.events.table("Samples", step, &rows)?;
        self.written.events = Some(self.events.records);
        Ok(())
    }

    pub fn log(&mut self, line: &str) -> anyhow::Result<()> {
        Ok(writeln!(self.log, "{line}")?)
    }
}

/// The last block of samples.txt: each sample with its mark; none where there is no file.
pub fn last_samples(run: &Path) -> Vec<(String, String)> {
    let text = fs::read_to_string(run.join("samples.txt")).unwrap_or_default();
    let last = text.rsplit("# step ").next().unwrap_or_default();
    (last.lines().skip(1))
        .filter_map(|line| line.split_once('\t'))
        .map(|(item, mark)| (item.to_string(), mark.to_string()))
        .collect()
}

/// Keeps the blocks of samples.txt (each starts with "# step N") that a checkpoint at `step`
/// covering `written` had seen, and says how many.
fn keep_samples(run: &Path, step: usize, written: Option<Written>) -> anyhow::Result<usize> {
    let file = run.join("samples.txt");
    let Ok(text) = fs::read_to_string(&file) else {
        return Ok(0);
    };
    let (mut blocks, mut current, mut kept, mut kept_blocks) = (0, None, String::new(), 0);
    for line in text.lines() {
        let starts = line.strip_prefix("# step ").and_then(|n| n.parse().ok());
        if let Some(n) = starts {
            blocks += 1;
            current = Some(n);
        }
        let keep = written.map_or(current.is_none_or(|n: usize| n <= step), |w| {
            blocks <= w.sample_blocks
        });
        if keep {
            kept_blocks += usize::from(starts.is_some());
            kept.push_str(line);
            kept.push('\n');
        }
    }
    write_atomic(&file, kept.as_bytes())?;
    Ok(kept_blocks)
}

/// What a run directory holds from the moment it appears: the resolved experiment and the first
/// summary.
#[derive(Clone, Copy)]
pub struct First<'a> {
    pub config: &'a str,
    pub summary: &'a Summary,
}

/// The end of the hidden name a run directory is made under before it is renamed into place.
const PARTIAL: &str = ".partial";

/// Makes the hidden directory `partial` with the run's lock, `checkpoints/`, config.toml and
/// summary.json, so that the rename that publishes it shows a run with all of them or nothing.
fn prepare(partial: &Path, first: First) -> anyhow::Result<File> {
    fs::create_dir(partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let lock = lock(partial)?;
    fs::create_dir(partial.join("checkpoints"))?;
    write_atomic(&partial.join("config.toml"), first.config.as_bytes())?;
    let json = serde_json::to_string_pretty(first.summary)?;
    write_atomic(&partial.join("summary.json"), json.as_bytes())?;
    Ok(lock)
}

/// Removes the half-made run directories in `parent` whose processes died before publishing
/// them: their lock is free. (One without a lock yet may be a process between its first two
/// calls: it is left.)
fn remove_abandoned(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let abandoned = name.starts_with('.') && name.ends_with(PARTIAL);
        if !(abandoned && path.join(".lock").exists()) {
            continue;
        }
        if let Ok(held) = lock(&path) {
            let _ = fs::remove_dir_all(&path);
            drop(held);
        }
    }
}

/// Takes `<run>/.lock` for as long as the returned file lives: a second process that would write
/// the same run (a resume of a run still going, two resumes at once) is refused instead. The
/// operating system releases it when the process ends, however it ends.
pub fn lock(dir: &Path) -> crate::error::Result<File> {
    let in_use = |why: String| {
        crate::error::Error::input(format!(
            "{}: cannot take the run's lock: {why}",
            dir.display()
        ))
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .map_err(|e| in_use(e.to_string()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(in_use(
            "another makemore process is writing this run; wait for it to end".into(),
        )),
        Err(fs::TryLockError::Error(e)) => Err(in_use(e.to_string())),
    }
}

/// Points `<runs>/<name>/latest` at the run just created. A convenience for people: nothing
/// reads it, so a file system without links only goes without.
fn point_latest(parent: &Path, run: &Path) {
    #[cfg(unix)]
    {
        let link = parent.join(format!(".latest.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&link);
        let target = run.file_name().expect("a run directory has a name");
        if std::os::unix::fs::symlink(target, &link).is_ok() {
            let _ = fs::rename(&link, parent.join("latest"));
        }
    }
}

/// `dir` itself when it is a run directory; for an experiment's directory (`runs/<name>`) or a
/// sweep's, the run started last (by its summary's `started_at`; a sweep's trials are named by
/// hash, not time), with `true` to say that one was chosen. Anything else comes back as it is,
/// for the caller's own error.
pub fn resolve(dir: &Path) -> (PathBuf, bool) {
    let is_run = |d: &Path| d.join("config.toml").is_file();
    if is_run(dir) {
        return (dir.to_path_buf(), false);
    }
    let started = |run: &Path| read_summary(run).map(|s| s.started_at).unwrap_or_default();
    let newest = fs::read_dir(dir).ok().and_then(|entries| {
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .filter(|p| is_run(p))
            .max_by_key(|run| (started(run), run.clone()))
    });
    match newest {
        Some(run) => (run, true),
        None => (dir.to_path_buf(), false),
    }
}

/// The run's config.toml with `sets` (and `MAKEMORE_*`) layered over it, as `run --resume` goes
/// on with it.
pub fn load_config(run: &Path, sets: &[String]) -> crate::error::Result<Experiment> {
    Ok(crate::config::load(&run.join("config.toml"), sets)?.experiment)
}

/// The resolved experiment a run keeps in config.toml, checked as any experiment is (a file
/// edited by hand after training may say anything).
pub fn read_config(run: &Path) -> anyhow::Result<Experiment> {
    let path = run.join("config.toml");
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let experiment: Experiment = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a valid experiment: {}",
            path.display(),
            crate::config::plain_words(e.message())
        )
    })?;
    experiment.validate().map_err(|(key, why)| {
        let parts: Vec<&str> = key.split('.').collect();
        let line = crate::config::line_of(&path, &parts).map_or(String::new(), |l| format!(":{l}"));
        anyhow::anyhow!("{}{line}: {key} {why}", path.display())
    })?;
    Ok(experiment)
}
