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

/// Three bigrams on the tiny names file, trained from seeds 1, 2 and 3 (the same data and
/// split), in one directory.
fn three_seeds() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    let runs = ["1", "2", "3"].map(|seed| {
        let at = format!("runs-{seed}");
        let seed = format!("seed={seed}");
        let args = ["run", "bigram.toml", "--runs", &at, "--set", &seed];
        let out = makemore(
            &[&args[..], &["--set", "schedule.steps=200"]].concat(),
            dir.path(),
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        only_run(&dir.path().join(at), "bigram")
    });
    (dir, runs.to_vec())
}

/// An ensemble's next-character distribution is the mean of its members': an item's
/// log-probability is the sum over its characters (and its end) of the log of the mean of the
/// members' probabilities of that character, recomputed here from each member's own scores.
#[test]
fn an_ensemble_averages_its_members_distributions_at_each_character() {
    use makemore::trained::{Trained, Which};
    let (_dir, runs) = three_seeds();
    let items: Vec<String> = ["emma", "zoe", "zia", "isabella"]
        .map(String::from)
        .to_vec();
    let members: Vec<Vec<Vec<f64>>> = (runs.iter())
        .map(|run| {
            let trained = Trained::open(run, Which::Best).unwrap();
            makemore::score::character_scores(&trained, &items).unwrap()
        })
        .collect();
    assert_ne!(members[0], members[1], "the seeds give different models");
    let ensemble = Trained::open_ensemble(&runs, Which::Best).unwrap();
    assert_eq!(ensemble.members.len(), 3);
    let scores = makemore::score::scores(&ensemble, &items).unwrap();
    for (i, item) in items.iter().enumerate() {
        let expected: f64 = (0..=item.len())
            .map(|t| {
                let mean = members.iter().map(|m| m[i][t].exp()).sum::<f64>() / 3.0;
                mean.ln()
            })
            .sum();
        let (total, _) = scores[i];
        assert!(
            (total - expected).abs() < 1e-5,
            "{item}: {total} vs {expected}"
        );
    }
}

/// An ensemble of one run is that run: the same scores, the same samples; joined by itself, the
/// mean of two equal distributions is that distribution. `score --split test` gives the
/// summary's figure.
#[test]
fn an_ensemble_of_one_run_scores_and_samples_as_the_run() {
    use makemore::trained::{Trained, Which};
    let (dir, runs) = three_seeds();
    let run = runs[0].to_str().unwrap();
    let alone = makemore(&["score", run, "emma", "zoe", "zia"], dir.path(), &[]);
    let twice = makemore(
        &["score", run, "--ensemble", run, "--", "emma", "zoe", "zia"],
        dir.path(),
        &[],
    );
    assert_eq!(twice.status.code(), Some(0), "{}", stderr(&twice));
    assert_eq!(stdout(&alone), stdout(&twice));

    let trained = Trained::open(&runs[0], Which::Best).unwrap();
    let test = makemore::score::split_loss(&trained, makemore::data::SplitName::Test).unwrap();
    let summary = makemore::rundir::read_summary(&runs[0]).unwrap();
    assert!(
        (test.loss - summary.test_loss.unwrap()).abs() < 1e-6,
        "{test:?} vs {summary:?}"
    );
    assert!((test.se.unwrap() - summary.test_loss_se.unwrap()).abs() < 1e-6);
    let out = makemore(&["score", run, "--split", "test"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected = format!("test {:.4} ± {:.4}", test.loss, test.se.unwrap());
    assert!(stdout(&out).starts_with(&expected), "{}", stdout(&out));

    let alone = sample(dir.path(), &runs[0], &["-n", "30", "--seed", "5"]);
    assert_eq!(alone.len(), 30);
    let three = sample(
        dir.path(),
        &runs[0],
        &[
            "-n",
            "30",
            "--seed",
            "5",
            "--ensemble",
            runs[1].to_str().unwrap(),
            runs[2].to_str().unwrap(),
        ],
    );
    assert_eq!(three.len(), 30);
    assert_ne!(alone, three, "three models' mean draws other items");
}

/// Runs whose data, cleaning or split differ are refused as an ensemble, naming what differs.
#[test]
fn an_ensemble_of_runs_on_different_data_or_splits_is_refused() {
    let (dir, runs) = three_seeds();
    let other = |name: &str, sets: &[&str]| {
        let at = format!("runs-{name}");
        let mut args = vec![
            "run",
            "bigram.toml",
            "--runs",
            &at,
            "--set",
            "schedule.steps=20",
        ];
        for set in sets {
            args.extend(["--set", set]);
        }
        let out = makemore(&args, dir.path(), &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        only_run(&dir.path().join(&at), "bigram")
    };
    common::write(dir.path(), "more.txt", &(NAMES.join("\n") + "\nzed\n"));
    let capitals: Vec<String> = NAMES
        .iter()
        .map(|n| n[..1].to_uppercase() + &n[1..])
        .collect();
    common::write(dir.path(), "capitals.txt", &(capitals.join("\n") + "\n"));
    let capitals = other("capitals", &["dataset.path=capitals.txt"]);
    let cases = [
        (
            &runs[0],
            other("data", &["dataset.path=more.txt"]),
            "different data",
        ),
        (
            &runs[0],
            other("split", &["dataset.split_seed=9"]),
            "splits differ",
        ),
        (
            &capitals,
            other(
                "lower",
                &["dataset.path=capitals.txt", "dataset.lowercase=true"],
            ),
            "vocabularies differ",
        ),
    ];
    for (first, run, why) in cases {
        let joined = [first.to_str().unwrap(), "--ensemble", run.to_str().unwrap()];
        for command in [&["score", "--split", "test"][..], &["sample"][..]] {
            let args = [&command[..1], &joined[..], &command[1..]].concat();
            let out = makemore(&args, dir.path(), &[]);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            assert!(stderr(&out).contains(why), "{why}: {}", stderr(&out));
        }
    }
}

/// `report --ensemble` adds to a configuration's row its seeds as one ensemble, with the test
/// figure `score --split test` gives that ensemble and its standard error; without the flag, or
/// for a row of one run, there is none.
#[test]
fn report_ensemble_adds_each_configurations_ensemble() {
    use makemore::data::SplitName;
    use makemore::trained::{Trained, Which};
    let (dir, runs) = three_seeds();
    let report = |extra: &[&str]| -> serde_json::Value {
        let dirs = ["runs-1", "runs-2", "runs-3"];
        let args = [&["report"][..], &dirs[..], &["--format", "json"], extra].concat();
        let out = makemore(&args, dir.path(), &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let plain = report(&[]);
    assert!(plain["rows"][0]["ensemble"].is_null());
    let with = report(&["--ensemble"]);
    let row = &with["rows"][0];
    assert_eq!(row["runs"].as_array().unwrap().len(), 3);
    let ensemble = Trained::open_ensemble(&runs, Which::Best).unwrap();
    let test = makemore::score::split_loss(&ensemble, SplitName::Test).unwrap();
    let figures = &row["ensemble"];
    assert_eq!(figures["members"], 3);
    assert_eq!(figures["test_loss"].as_f64(), Some(test.loss));
    assert_eq!(figures["test_loss_se"].as_f64(), test.se);
    // Each member's own test figure is worse than the mean of their distributions' here.
    let members = row["test_loss"]["mean"].as_f64().unwrap();
    assert!(test.loss <= members, "{} vs {members}", test.loss);

    let one = makemore(
        &["report", "runs-1", "--ensemble", "--format", "csv"],
        dir.path(),
        &[],
    );
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    let csv = stdout(&one);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(
        header[header.len() - 4..],
        [
            "ensemble_members",
            "ensemble_val_loss",
            "ensemble_test_loss",
            "ensemble_test_loss_se"
        ]
    );
    assert!(
        csv.lines().nth(1).unwrap().ends_with(",,,"),
        "one run: no ensemble"
    );
}
