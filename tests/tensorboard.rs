//! TensorBoard event files: every run writes metrics.csv's figures as scalars, read back here by
//! our reader and by TensorBoard's own (its Python package, installed under CI), the generation
//! metrics as summary.json has them, and a resumed run holds each step once.

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
    let expected = scalars(&trained(reference.path())).unwrap();

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
