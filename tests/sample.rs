//! `makemore sample` and `makemore score` on a small trained run.

mod common;

use std::path::{Path, PathBuf};

use common::{NAMES, experiment, makemore, only_run, stderr, stdout};

/// A trained bigram on the tiny names file, and the directory it lives in.
fn trained() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    let runs = dir.path().join("runs");
    let out = makemore(
        &[
            "run",
            "bigram.toml",
            "--runs",
            runs.to_str().unwrap(),
            "--set",
            "schedule.steps=300",
            "--set",
            "schedule.learning_rate=0.3",
        ],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run = only_run(&runs, "bigram");
    (dir, run)
}

fn sample(dir: &Path, run: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["sample", run.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = makemore(&all, dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out).lines().map(String::from).collect()
}

#[test]
fn sampling_options_do_what_they_say() {
    let (dir, run) = trained();
    let d = dir.path();

    let twenty = sample(d, &run, &[]);
    assert_eq!(twenty.len(), 20, "-n defaults to 20");
    assert_eq!(
        sample(d, &run, &["-n", "7", "--seed", "5"]),
        sample(d, &run, &["-n", "7", "--seed", "5"]),
        "same seed, same samples"
    );
    assert_ne!(
        sample(d, &run, &["-n", "7", "--seed", "5"]),
        sample(d, &run, &["-n", "7", "--seed", "6"])
    );

    // top-k 1 is greedy: one item, whatever the seed; a temperature near 0 approaches it.
    let greedy = sample(d, &run, &["-n", "5", "--top-k", "1", "--seed", "1"]);
    assert!(greedy.iter().all(|s| s == &greedy[0]), "{greedy:?}");
    assert_eq!(
        greedy,
        sample(d, &run, &["-n", "5", "--top-k", "1", "--seed", "2"])
    );
    assert_eq!(
        greedy,
        sample(
            d,
            &run,
            &["-n", "5", "--temperature", "0.001", "--seed", "3"]
        )
    );

    let prefixed = sample(d, &run, &["-n", "10", "--prefix", "ma"]);
    assert!(prefixed.iter().all(|s| s.starts_with("ma")), "{prefixed:?}");

    let new = sample(d, &run, &["-n", "30", "--new-only", "--mark"]);
    assert_eq!(new.len(), 30);
    for line in &new {
        let (item, mark) = line.split_once('\t').unwrap();
        assert_eq!(mark, "new");
        assert!(!NAMES.contains(&item), "{item} is in the data");
    }
    let marked = sample(d, &run, &["-n", "50", "--mark", "--temperature", "0.5"]);
    assert!(
        marked.iter().all(|l| ["in-train", "in-test", "new"]
            .iter()
            .any(|m| l.ends_with(m))),
        "{marked:?}"
    );
}

#[test]
fn bad_sampling_options_are_usage_errors() {
    let (dir, run) = trained();
    let run = run.to_str().unwrap();
    for (args, message) in [
        (
            vec!["--temperature", "nan"],
            "--temperature must be a finite number ≥ 0",
        ),
        (
            vec!["--temperature", "-1"],
            "--temperature must be a finite number ≥ 0",
        ),
        (vec!["--top-p", "0"], "--top-p must be in (0, 1]"),
        (vec!["--top-p", "1.5"], "--top-p must be in (0, 1]"),
        (vec!["--prefix", "Zé"], "not in the vocabulary"),
        (vec!["--prefix", "aaaaaaaaaaaaaaaaaaaaaaaaa"], "too long"),
    ] {
        let mut all = vec!["sample", run];
        all.extend(args.iter().copied());
        let out = makemore(&all, dir.path(), &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn missing_or_damaged_checkpoints_are_named() {
    let (dir, run) = trained();
    std::fs::write(run.join("checkpoints/best.ckpt"), b"\x93garbage").unwrap();
    std::fs::remove_file(run.join("checkpoints/last.ckpt")).unwrap();
    for which in ["best", "last"] {
        let out = makemore(
            &["sample", run.to_str().unwrap(), "--checkpoint", which],
            dir.path(),
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{which}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{which}.ckpt")) && !err.contains("panicked"),
            "{err}"
        );
    }
    let out = makemore(&["sample", dir.path().to_str().unwrap()], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a run directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn scores_add_up_to_the_model_loss() {
    let (dir, run) = trained();
    let trained = makemore::trained::Trained::open(&run, makemore::trained::Which::Last).unwrap();
    let test = trained.data.test.items.clone();
    let scores = makemore::score::scores(&trained, &test).unwrap();
    let total: f64 = scores.iter().map(|s| s.0).sum();
    let characters: usize = test.iter().map(|i| i.chars().count() + 1).sum();
    for ((total, per_char), item) in scores.iter().zip(&test) {
        assert!((per_char - total / (item.chars().count() + 1) as f64).abs() < 1e-9);
    }
    let summary = makemore::rundir::read_summary(&run).unwrap();
    let loss = -total / characters as f64;
    assert!(
        (loss - summary.test_loss_last.unwrap()).abs() < 1e-5,
        "{loss} vs {:?}",
        summary.test_loss_last
    );

    // From the command line, arguments or standard input, one line per item.
    let out = makemore(
        &[
            "score",
            run.to_str().unwrap(),
            "emma",
            "zzzz",
            "--checkpoint",
            "last",
        ],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<Vec<f64>> = stdout(&out)
        .lines()
        .map(|l| l.split('\t').skip(1).map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0][0] > lines[1][0], "a name is likelier than zzzz");
    let out = makemore(
        &["score", run.to_str().unwrap(), "emma", "Ω"],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("outside the model's vocabulary"));
}

#[test]
fn an_experiments_directory_stands_for_its_newest_run() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    let train = |seed: &str| {
        let set = format!("seed={seed}");
        let out = makemore(
            &["run", "bigram.toml", "--runs", "runs", "--set", &set],
            dir.path(),
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    train("1");
    std::thread::sleep(std::time::Duration::from_millis(1100)); // names carry the second
    train("2");
    let experiment_dir = dir.path().join("runs/bigram");
    let runs = common::run_dirs(&experiment_dir);
    let newest = runs.last().unwrap();
    let latest = std::fs::read_link(experiment_dir.join("latest")).unwrap();
    assert_eq!(Some(latest.as_os_str()), newest.file_name());

    let out = makemore(&["sample", "runs/bigram", "-n", "3"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 3);
    let said = stderr(&out);
    assert!(
        said.contains("using the newest run")
            && said.contains(newest.file_name().unwrap().to_str().unwrap()),
        "{said}"
    );
    let out = makemore(&["score", "runs/bigram", "emma"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // The link is not a third run.
    let out = makemore(
        &["report", "runs/bigram", "--format", "json"],
        dir.path(),
        &[],
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let counted: usize = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runs"].as_array().unwrap().len())
        .sum();
    assert_eq!(counted, 2);
}
