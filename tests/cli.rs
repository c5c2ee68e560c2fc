//! `makemore run` end to end: the run directory, reproducibility, and what bad input leaves.

mod common;

use std::path::Path;

use common::{experiment, losses, makemore, only_run, stderr, stdout};

fn run(dir: &Path, file: &str, args: &[&str]) -> std::process::Output {
    let runs = dir.join("runs");
    let mut all = vec!["run", file, "--runs", runs.to_str().unwrap()];
    all.extend_from_slice(args);
    makemore(&all, dir, &[])
}

#[test]
fn a_run_leaves_a_complete_directory() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "");
    let out = run(dir.path(), "mlp.toml", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run_dir = only_run(&dir.path().join("runs"), "mlp");
    let name = run_dir.file_name().unwrap().to_str().unwrap();
    assert_eq!(name.len(), "20261124-120000-abcdef".len(), "{name}");

    for file in [
        "config.toml",
        "summary.json",
        "metrics.csv",
        "samples.txt",
        "train.log",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
    ] {
        assert!(run_dir.join(file).is_file(), "{file} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    for key in [
        "status",
        "model_type",
        "params",
        "step",
        "selected_on",
        "selected_step",
        "best_estimate",
        "val_loss",
        "test_loss",
        "test_loss_se",
        "test_loss_last",
        "overlap",
        "final_train_loss",
        "final_val_loss",
        "ms_per_step",
        "tokens_per_s",
        "wall_s",
        "backend",
        "version",
        "config_hash",
        "data_hash",
        "split_hash",
        "error",
    ] {
        assert!(summary.get(key).is_some(), "summary.json lacks {key}");
    }
    assert_eq!(summary["status"], "done");
    assert_eq!(summary["step"], 60);
    assert!(summary["ms_per_step"].as_f64().unwrap() > 0.0);
    assert!(summary["final_val_loss"].is_null());

    let metrics = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let header = metrics.lines().next();
    assert_eq!(header, Some("step,split,loss,lr,elapsed_s,tokens_per_s"));
    let rows = losses(&run_dir);
    let rows: Vec<Vec<&str>> = rows.lines().map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().any(|row| row[0] == "60" && row[1] == "test"));
    assert_eq!(
        rows.iter().filter(|row| row[1] == "train").count(),
        6 + 3 + 1,
        "every 10 steps, each evaluation, and the final figure"
    );
    let samples = std::fs::read_to_string(run_dir.join("samples.txt")).unwrap();
    assert!(
        samples.contains("# step 30") && samples.contains("# step 60"),
        "{samples}"
    );
    let printed = stdout(&out);
    assert!(
        printed.contains("last model")
            && printed.contains("selected on")
            && printed.contains("samples:"),
        "{printed}"
    );
    assert!(
        ["in-train", "in-test", "new"]
            .iter()
            .any(|mark| printed.contains(mark)),
        "{printed}"
    );
}

#[test]
fn same_config_same_seed_same_losses_and_config_toml_reproduces() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "");
    for _ in 0..2 {
        let out = run(dir.path(), "mlp.toml", &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let runs = common::run_dirs(&dir.path().join("runs/mlp"));
    assert_eq!(losses(&runs[0]), losses(&runs[1]));

    // The resolved config.toml of a run reproduces it, from anywhere.
    let config = runs[0].join("config.toml");
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run(elsewhere.path(), config.to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        losses(&runs[0]),
        losses(&only_run(&elsewhere.path().join("runs"), "mlp"))
    );

    // A different seed gives different losses.
    let out = run(
        dir.path(),
        "mlp.toml",
        &["--set", "seed=8", "--set", "name=other"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_ne!(
        losses(&runs[0]),
        losses(&only_run(&dir.path().join("runs"), "other"))
    );
}

#[test]
fn bad_input_exits_2_and_leaves_no_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "");
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "schedule.batch_size=0"], "schedule.batch_size"),
        (
            &["--set", "model.type=transformer", "--set", "model.n_embd=9"],
            "does not divide",
        ),
        (
            &[
                "--set",
                "dataset.path=mlp.toml",
                "--set",
                "dataset.test_size=0",
            ],
            "0 test items",
        ),
        (&["--set", "model.colour=3"], "no such key"),
    ];
    for (args, message) in cases {
        let out = run(dir.path(), "mlp.toml", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(
            !dir.path().join("runs").join("mlp").exists(),
            "{args:?} left a run directory"
        );
    }
    let out = makemore(&["frobnicate"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
}

/// The `lr` column of metrics.csv at the train rows.
fn learning_rates(run: &Path) -> Vec<(usize, f64)> {
    let mut reader = csv::Reader::from_path(run.join("metrics.csv")).unwrap();
    reader
        .records()
        .map(|r| r.unwrap())
        .filter(|r| &r[1] == "train")
        .map(|r| (r[0].parse().unwrap(), r[3].parse().unwrap()))
        .collect()
}

#[test]
fn sgd_with_step_milestones_follows_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "");
    let args = [
        "--set",
        "schedule.optimizer=sgd",
        "--set",
        "schedule.learning_rate=0.1",
        "--set",
        "schedule.lr_schedule=step",
        "--set",
        "schedule.milestones=[30, 50]",
        "--set",
        "schedule.gamma=0.1",
    ];
    let out = run(dir.path(), "mlp.toml", &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rates = learning_rates(&only_run(&dir.path().join("runs"), "mlp"));
    // The rate logged at step N is the one its update used (update N - 1, 0-based).
    for (step, lr) in rates {
        let want = if step <= 30 {
            0.1
        } else if step <= 50 {
            0.01
        } else {
            0.001
        };
        assert!(
            (lr - want).abs() < 1e-9,
            "step {step}: lr {lr}, want {want}"
        );
    }
}

#[test]
fn early_stopping_ends_the_run_after_patience_evaluations() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    // A rate too small to move the zero-initialised table: the test loss never improves.
    let args = [
        "--set",
        "schedule.learning_rate=1e-30",
        "--set",
        "schedule.early_stop_patience=2",
        "--set",
        "schedule.eval_every=10",
    ];
    let out = run(dir.path(), "bigram.toml", &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run_dir = only_run(&dir.path().join("runs"), "bigram");
    let summary = makemore::rundir::read_summary(&run_dir).unwrap();
    assert_eq!(summary.step, 30, "best at 10, no better at 20 and 30");
    assert_eq!(summary.status, makemore::rundir::Status::Done);
    assert!(
        std::fs::read_to_string(run_dir.join("train.log"))
            .unwrap()
            .contains("stopping early")
    );
}

#[test]
fn dropout_is_reproducible_and_changes_training() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "transformer", "");
    for (name, dropout) in [("a", "0.3"), ("b", "0.3"), ("none", "0")] {
        let out = run(
            dir.path(),
            "transformer.toml",
            &[
                "--set",
                &format!("model.dropout={dropout}"),
                "--set",
                &format!("name={name}"),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let runs = dir.path().join("runs");
    let [a, b, none] = ["a", "b", "none"].map(|name| losses(&only_run(&runs, name)));
    assert_eq!(a, b, "same seed, same dropout masks");
    assert_ne!(a, none);
    let out = run(
        dir.path(),
        "transformer.toml",
        &["--set", "model.dropout=1"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("model.dropout must be in [0, 1)"),
        "{}",
        stderr(&out)
    );
}
