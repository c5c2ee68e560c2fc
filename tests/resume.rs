//! Exact resume: a run stopped by a signal, killed outright, or extended past its step limit ends
//! with the losses of an uninterrupted run, bit for bit.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{experiment, makemore, only_run, stderr};

const STEPS: &str = "schedule.steps=4000";

fn rows(run: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    // step, split, loss, lr: the timing columns differ between runs.
    text.lines()
        .map(|l| l.split(',').take(4).map(String::from).collect())
        .collect()
}

fn train_rows_after(run: &Path, step: usize) -> Vec<Vec<String>> {
    rows(run)
        .into_iter()
        .filter(|r| r[1] == "train" && r[0].parse::<usize>().is_ok_and(|s| s > step))
        .collect()
}

/// Starts a run in the background and stops it with `signal` once it has passed step 100.
fn interrupted_run(dir: &Path, model: &str, signal: &str) -> PathBuf {
    let runs = dir.join("stopped");
    let mut child = common::command(Path::new("."))
        .args([
            "run",
            &format!("{model}.toml"),
            "--runs",
            runs.to_str().unwrap(),
            "--set",
            STEPS,
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run = common::wait_for("the run to get going", || {
        let run = common::run_dirs(&runs.join(model)).pop()?;
        let metrics = std::fs::read_to_string(run.join("metrics.csv")).ok()?;
        (metrics.lines().count() > 11).then_some(run)
    });
    common::signal(&child, signal);
    let exit = child.wait().unwrap();
    let summary = makemore::rundir::read_summary(&run).unwrap();
    if signal == "-TERM" {
        assert_eq!(exit.code(), Some(130), "a signal ends the run with 130");
        assert_eq!(summary.status, makemore::rundir::Status::Interrupted);
        assert!(
            summary.step < 4000,
            "the run finished before the signal arrived"
        );
    } else {
        assert_eq!(
            summary.status,
            makemore::rundir::Status::Running,
            "killed: the summary says it was running"
        );
    }
    run
}

fn resume(dir: &Path, run: &Path, args: &[&str]) {
    let mut all = vec!["run", "--resume", run.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = makemore(&all, dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

fn uninterrupted(dir: &Path, model: &str) -> PathBuf {
    only_run_after(dir, model, "full", STEPS)
}

#[test]
fn resume_after_a_signal_matches_an_uninterrupted_run() {
    for model in ["mlp", "transformer"] {
        let dir = tempfile::tempdir().unwrap();
        let file = experiment(dir.path(), model, "[backend]\nthreads = 1\n");
        // The transformer trains with dropout: its masks must come back the same after resuming.
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("n_embd2 = 16\n", "n_embd2 = 16\ndropout = 0.1\n");
        std::fs::write(&file, text).unwrap();
        let full = uninterrupted(dir.path(), model);
        let stopped = interrupted_run(dir.path(), model, "-TERM");
        resume(dir.path(), &stopped, &[]);
        assert_eq!(rows(&full), rows(&stopped), "{model}");
        assert_eq!(
            std::fs::read_to_string(full.join("samples.txt")).unwrap(),
            std::fs::read_to_string(stopped.join("samples.txt")).unwrap()
        );
        let [a, b] = [&full, &stopped].map(|r| makemore::rundir::read_summary(r).unwrap());
        assert_eq!(a.test_loss, b.test_loss);
        assert_eq!(a.selected_step, b.selected_step);
        assert_eq!(b.status, makemore::rundir::Status::Done);
    }
}

#[test]
fn resume_after_kill_9_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "[backend]\nthreads = 1\n");
    let full = uninterrupted(dir.path(), "mlp");
    let killed = interrupted_run(dir.path(), "mlp", "-KILL");
    resume(dir.path(), &killed, &[]);
    assert_eq!(rows(&full), rows(&killed));
}

#[test]
fn extending_a_finished_run_continues_its_training() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "transformer", "");
    let full = only_run_after(dir.path(), "transformer", "full", "schedule.steps=60");
    let short = only_run_after(dir.path(), "transformer", "short", "schedule.steps=30");
    // Resuming a finished run without more steps does nothing.
    let before = rows(&short);
    resume(dir.path(), &short, &[]);
    assert_eq!(before, rows(&short));
    resume(dir.path(), &short, &["--set", "schedule.steps=60"]);
    // The training after step 30 is the uninterrupted run's (the extra final evaluation at 30
    // does not touch the weights or the data order).
    assert_eq!(train_rows_after(&full, 30), train_rows_after(&short, 30));
    assert_eq!(makemore::rundir::read_summary(&short).unwrap().step, 60);
}

/// `--until` stops a run at a step of its schedule (here one between evaluations, then one
/// that is an evaluation's) with a checkpoint; going on from each pause ends with the losses and
/// samples of a run that never paused, dropout masks and the weight average included.
#[test]
fn a_run_paused_with_until_resumes_to_the_uninterrupted_losses() {
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(dir.path(), "transformer", "");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("n_embd2 = 16\n", "n_embd2 = 16\ndropout = 0.1\n")
        .replace("steps = 60\n", "steps = 60\nema_decay = 0.9\n");
    std::fs::write(&file, text).unwrap();
    let steps = "schedule.steps=120";
    let full = only_run_after(dir.path(), "transformer", "full", steps);
    let runs = dir.path().join("paused");
    let args = ["run", "transformer.toml", "--runs", runs.to_str().unwrap()];
    let out = makemore(
        &[&args[..], &["--set", steps, "--until", "37"]].concat(),
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(common::stdout(&out).contains("paused at step 37"));
    let paused = only_run(&runs, "transformer");
    let summary = makemore::rundir::read_summary(&paused).unwrap();
    assert_eq!(summary.step, 37);
    assert_eq!(summary.status, makemore::rundir::Status::Interrupted);
    assert!(
        summary.test_loss.is_none(),
        "not evaluated on every item yet"
    );
    // The experiment evaluates every 20 steps: 60 is an evaluation's step.
    resume(dir.path(), &paused, &["--until", "60"]);
    assert_eq!(makemore::rundir::read_summary(&paused).unwrap().step, 60);
    resume(dir.path(), &paused, &[]);
    // The pause at 37 evaluated there (and only there): every other row is the straight run's.
    let mut kept = rows(&paused);
    kept.retain(|row| row[0] != "37");
    assert_eq!(rows(&full), kept);
    assert_eq!(
        rows(&paused).len(),
        kept.len() + 3,
        "train, test and the average's test estimated at 37"
    );
    assert!(kept.iter().any(|row| row[1] == "test_ema"), "{kept:?}");
    assert_eq!(
        std::fs::read_to_string(full.join("samples.txt")).unwrap(),
        std::fs::read_to_string(paused.join("samples.txt")).unwrap()
    );
    let [a, b] = [&full, &paused].map(|r| makemore::rundir::read_summary(r).unwrap());
    assert_eq!(
        (a.test_loss, a.selected_step, a.selected_weights),
        (b.test_loss, b.selected_step, b.selected_weights)
    );
    assert!(a.selected_weights.is_some());
    assert_eq!(b.status, makemore::rundir::Status::Done);
}

fn only_run_after(dir: &Path, model: &str, runs: &str, steps: &str) -> PathBuf {
    let runs = dir.join(runs);
    let out = makemore(
        &[
            "run",
            &format!("{model}.toml"),
            "--runs",
            runs.to_str().unwrap(),
            "--set",
            steps,
        ],
        dir,
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    only_run(&runs, model)
}

#[test]
fn resume_refuses_config_changes_and_bad_directories() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "");
    let run = only_run_after(dir.path(), "mlp", "runs", "schedule.steps=20");
    let out = makemore(
        &[
            "run",
            "--resume",
            run.to_str().unwrap(),
            "--set",
            "model.n_embd=4",
        ],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("model.n_embd"), "{}", stderr(&out));

    let out = makemore(
        &["run", "--resume", dir.path().to_str().unwrap()],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a run directory"),
        "{}",
        stderr(&out)
    );

    // A damaged checkpoint is named, not a panic.
    std::fs::write(run.join("checkpoints/last.ckpt"), b"not a checkpoint").unwrap();
    let out = makemore(
        &[
            "run",
            "--resume",
            run.to_str().unwrap(),
            "--set",
            "schedule.steps=40",
        ],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("last.ckpt") && !stderr(&out).contains("panicked"),
        "{}",
        stderr(&out)
    );
}
