//! TensorBoard event files: every run writes metrics.csv's figures as scalars, read back here by
//! our reader and by TensorBoard's own (its Python package, installed under CI), the generation
//! metrics as summary.json has them, and a resumed run holds each step once. TensorBoard's
//! HParams plugin reads the run's settings and final metrics, its Text plugin the samples.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{experiment, makemore, only_run, stderr};
use makemore::tensorboard::scalars;

const ARGS: [&str; 12] = [
    "run",
    "mlp.toml",
    "--runs",
    "runs",
    "--set",
    "schedule.steps=2000",
    "--set",
    "schedule.eval_every=100",
    "--set",
    "dataset.val_fraction=0.2",
    "--set",
    "generation.temperatures=[0.5, 1.5]",
];

fn trained(dir: &Path) -> PathBuf {
    experiment(dir, "mlp", "");
    let out = makemore(&ARGS, dir, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    only_run(&dir.join("runs"), "mlp")
}

/// (step, loss) of every row of metrics.csv, the loss as the f32 an event holds.
fn metric_rows(run: &Path) -> Vec<(i64, f32)> {
    let mut reader = csv::Reader::from_path(run.join("metrics.csv")).unwrap();
    let mut rows: Vec<(i64, f32)> = reader
        .records()
        .map(|r| r.unwrap())
        .map(|r| (r[0].parse().unwrap(), r[2].parse::<f64>().unwrap() as f32))
        .collect();
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rows
}

#[test]
fn every_row_of_metrics_csv_is_a_scalar_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path());
    let events = scalars(&run).unwrap();
    let tags: BTreeSet<&str> = events.iter().map(|e| e.0.as_str()).collect();
    let figures = makemore::generation::FIGURES;
    let generation = ["Generation", "Frontier"]
        .iter()
        .flat_map(|g| figures.map(|f| format!("{g}/{f}")));
    let expected: BTreeSet<String> = [
        "Final/test",
        "Final/train",
        "Final/val",
        "Loss/batch",
        "Loss/train",
        "Loss/val",
        "lr",
        "tokens_per_s",
    ]
    .map(String::from)
    .into_iter()
    .chain(generation)
    .collect();
    assert_eq!(tags, expected.iter().map(String::as_str).collect());
    generation_as_in_the_summary(&run, &events);
    let mut losses: Vec<(i64, f32)> = events
        .iter()
        .filter(|e| e.0.starts_with("Loss/") || e.0.starts_with("Final/"))
        .map(|e| (e.1, e.2))
        .collect();
    losses.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(losses, metric_rows(&run));
    let distinct: BTreeSet<(&str, i64)> = events.iter().map(|e| (e.0.as_str(), e.1)).collect();
    assert_eq!(distinct.len(), events.len(), "a tag twice at one step");
}

/// `Generation/<figure>` at the last step is summary.json's headline; `Frontier/<figure>` at
/// step 100 × T its frontier's figure at T, for T = 0.5 and 1.5 (and not 1.0, the headline's).
fn generation_as_in_the_summary(run: &Path, events: &[(String, i64, f32)]) {
    let summary = makemore::rundir::read_summary(run).unwrap();
    let at = |tag: &str| -> Vec<(i64, f32)> {
        let mut found: Vec<(i64, f32)> = (events.iter())
            .filter(|e| e.0 == tag)
            .map(|e| (e.1, e.2))
            .collect();
        found.sort_by(|a, b| a.partial_cmp(b).unwrap());
        found
    };
    let headline = summary.generation.as_ref().unwrap();
    let frontier = &summary.frontier;
    for name in makemore::generation::FIGURES {
        let value = |m: &makemore::generation::Metrics| m.figure(name).unwrap().value as f32;
        let step = summary.step as i64;
        assert_eq!(at(&format!("Generation/{name}")), [(step, value(headline))]);
        let expected = [(50, value(&frontier[0])), (150, value(&frontier[1]))];
        assert_eq!(at(&format!("Frontier/{name}")), expected, "{name}");
    }
}

#[test]
fn a_run_killed_and_resumed_holds_each_step_once() {
    let reference = tempfile::tempdir().unwrap();
    let reference_run = trained(reference.path());
    let expected = scalars(&reference_run).unwrap();

    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "");
    let mut child = common::command(dir.path())
        .args(ARGS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed between two checkpoints, so that events came after the last one.
    let run = common::wait_for("the estimate at step 500", || {
        let run = common::run_dirs(&dir.path().join("runs/mlp")).pop()?;
        let events = scalars(&run).ok()?;
        events
            .iter()
            .any(|e| e.0 == "Loss/val" && e.1 == 500)
            .then_some(run)
    });
    std::thread::sleep(Duration::from_millis(30));
    common::signal(&child, "-9");
    child.wait().unwrap();
    let out = makemore(&["run", "--resume", run.to_str().unwrap()], dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let strip = |s: Vec<(String, i64, f32)>| -> Vec<(String, i64, f32)> {
        s.into_iter().filter(|e| e.0 != "tokens_per_s").collect()
    };
    assert_eq!(strip(scalars(&run).unwrap()), strip(expected));
    // The settings once, and the samples' tables at the steps of an uninterrupted run.
    let records = |run: &Path| -> Vec<(String, i64)> {
        let values = makemore::tensorboard::values(run).unwrap().into_iter();
        let tables = values.filter(|(_, v)| v.simple_value.is_none());
        tables.map(|(step, v)| (v.tag, step)).collect()
    };
    assert_eq!(records(&run), records(&reference_run));
    assert_eq!(
        records(&run)[0],
        (makemore::tensorboard::SESSION_START_TAG.into(), 0)
    );
}

/// A Python with the `tensorboard` package: the machine's, or under CI one made for the test.
fn python_with_tensorboard() -> Option<PathBuf> {
    let has = |python: &Path| {
        Command::new(python)
            .args(["-c", "import tensorboard"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let system = PathBuf::from("python3");
    if has(&system) {
        return Some(system);
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tensorboard-venv");
    let python = venv.join("bin/python");
    if has(&python) {
        return Some(python);
    }
    // Elsewhere the test says it skipped; under CI it installs what it needs.
    std::env::var_os("CI")?;
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "tensorboard"])
            .status()
            .is_ok_and(|s| s.success());
    assert!(made, "under CI: cannot install the tensorboard package");
    Some(python)
}

const READ_WITH_TENSORBOARD: &str = r#"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
events = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
events.Reload()
for tag in sorted(events.Tags()["scalars"]):
    for e in events.Scalars(tag):
        print(tag, e.step, repr(e.value))
"#;

#[test]
fn tensorboard_itself_reads_the_scalars() {
    let Some(python) = python_with_tensorboard() else {
        eprintln!("skipped: no Python with the tensorboard package (pip install tensorboard)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path());
    let out = Command::new(python)
        .args(["-c", READ_WITH_TENSORBOARD])
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let theirs: Vec<(String, i64, f32)> = common::stdout(&out)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    let mut ours = scalars(&run).unwrap();
    ours.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(theirs, ours);
}

/// What TensorBoard's HParams plugin serves its dashboard for the log directory argv[1] (its own
/// ListSessionGroups handler over its own event reader), and the Text plugin's tables of the run
/// argv[2], as JSON.
const READ_HPARAMS_AND_TEXT: &str = r#"
import json, sys
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups
from tensorboard.util import tensor_util
logdir = sys.argv[1]
events = plugin_event_multiplexer.EventMultiplexer()
events.AddRunsFromDirectory(logdir)
events.Reload()
provider = data_provider.MultiplexerDataProvider(events, logdir)
tb = base_plugin.TBContext(logdir=logdir, multiplexer=events, data_provider=provider)
request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=100, allowed_statuses=[0, 1, 2, 3])
groups = list_session_groups.Handler(
    context.RequestContext(), backend_context.Context(tb), "", request).run().session_groups
sessions = [{
    "hparams": {k: getattr(v, v.WhichOneof("kind")) for k, v in g.hparams.items()},
    "metrics": {m.name.tag: [m.training_step, m.value] for m in g.metric_values},
} for g in groups]
samples = {str(t.step): tensor_util.make_ndarray(t.tensor_proto).astype(str).tolist()
           for t in events.Tensors(sys.argv[2], "Samples")}
print(json.dumps({"sessions": sessions, "samples": samples}))
"#;

/// The HParams dashboard's one session holds every setting of config.toml (numbers as numbers,
/// lists as their TOML text) and, as each metric, the last value of its scalar; the Text
/// dashboard's tables are samples.txt's blocks.
#[test]
fn tensorboard_reads_the_hyperparameters_metrics_and_samples() {
    let Some(python) = python_with_tensorboard() else {
        eprintln!("skipped: no Python with the tensorboard package (pip install tensorboard)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path());
    // The experiment's directory is the log directory, as a user gives it, without the link to
    // its newest run (TensorBoard would count it as a second run).
    let experiment_dir = run.parent().unwrap();
    std::fs::remove_file(experiment_dir.join("latest")).unwrap();
    let out = Command::new(python)
        .args(["-c", READ_HPARAMS_AND_TEXT])
        .arg(experiment_dir)
        .arg(run.file_name().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let read: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    let [session] = read["sessions"].as_array().unwrap().as_slice() else {
        panic!("one session: {read}");
    };
    assert_eq!(session["hparams"], settings(&run));
    let mut last = serde_json::Map::new();
    for (tag, step, value) in scalars(&run).unwrap() {
        last.insert(tag, serde_json::json!([step, value as f64]));
    }
    assert_eq!(session["metrics"], serde_json::Value::Object(last));
    assert_eq!(read["samples"], sample_blocks(&run));
}

/// config.toml's settings by dotted key, as the HParams plugin's values.
fn settings(run: &Path) -> serde_json::Value {
    fn walk(
        prefix: &str,
        value: &toml::Value,
        out: &mut serde_json::Map<String, serde_json::Value>,
    ) {
        let json = match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    let key = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&key, value, out);
                }
                return;
            }
            toml::Value::Integer(i) => serde_json::json!(*i as f64),
            toml::Value::Float(f) => serde_json::json!(f),
            toml::Value::Boolean(b) => serde_json::json!(b),
            toml::Value::String(s) => serde_json::json!(s),
            other => serde_json::json!(other.to_string()),
        };
        out.insert(prefix.to_string(), json);
    }
    let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let mut out = serde_json::Map::new();
    walk("", &text.parse::<toml::Value>().unwrap(), &mut out);
    assert!(out.contains_key("model.n_embd") && out.contains_key("schedule.betas"));
    serde_json::Value::Object(out)
}

/// samples.txt's blocks by step: each sample with its mark.
fn sample_blocks(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("samples.txt")).unwrap();
    let mut blocks = serde_json::Map::new();
    let mut step = String::new();
    for line in text.lines() {
        match line.strip_prefix("# step ") {
            Some(n) => step = n.to_string(),
            None => {
                let entry = blocks.entry(step.clone()).or_insert(serde_json::json!([]));
                let (item, mark) = line.split_once('\t').unwrap();
                entry
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!([item, mark]));
            }
        }
    }
    assert!(blocks.len() > 1, "samples at several steps");
    serde_json::Value::Object(blocks)
}
