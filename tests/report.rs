//! `makemore report` on a runs directory made from tiny real runs: two learning rates with two
//! seeds each, one run on another split, a failed and a running run, and a damaged directory.

mod common;

use std::path::{Path, PathBuf};

use common::{experiment, makemore, stderr, stdout};

/// The fixture, built once per test (each test has its own directory).
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "rnn", "");
    let runs = dir.path().join("runs");
    let run = |args: &[&str]| {
        let mut all = vec![
            "run",
            "rnn.toml",
            "--runs",
            runs.to_str().unwrap(),
            "--set",
            "schedule.steps=40",
        ];
        all.extend_from_slice(args);
        let out = makemore(&all, dir.path(), &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    for lr in ["1e-2", "3e-3"] {
        for seed in ["1", "2"] {
            run(&[
                "--set",
                &format!("schedule.learning_rate={lr}"),
                "--set",
                &format!("seed={seed}"),
            ]);
        }
    }
    run(&["--set", "dataset.split_seed=5", "--set", "name=other-split"]);
    run(&[
        "--set",
        "schedule.learning_rate=1e-3",
        "--set",
        "name=failed",
    ]);
    run(&[
        "--set",
        "schedule.learning_rate=1e-3",
        "--set",
        "seed=9",
        "--set",
        "name=running",
    ]);
    // Timings differ from run to run: pin them so the outputs can be compared with golden files.
    for summary in walk(&runs)
        .into_iter()
        .filter(|p| p.ends_with("summary.json"))
    {
        let mut value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
        value["wall_s"] = 1.5.into();
        value["tokens_per_s"] = 12345.0.into();
        value["ms_per_step"] = 2.0.into();
        let name = value["name"].as_str().unwrap().to_string();
        if name == "failed" || name == "running" {
            value["status"] = name.into();
        }
        std::fs::write(&summary, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    }
    let damaged = runs.join("damaged/20260101-000000-abcdef");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::write(damaged.join("summary.json"), "{ not json").unwrap();
    (dir, runs)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn report(dir: &Path, runs: &Path, args: &[&str]) -> String {
    let mut all = vec!["report", runs.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = makemore(&all, dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Paths and run names (times, random suffixes) vary between test runs.
    let text = stdout(&out).replace(runs.to_str().unwrap(), "<runs>");
    regex::Regex::new(r"\d{8}-\d{6}-[0-9a-f]{6}")
        .unwrap()
        .replace_all(&text, "<run>")
        .into_owned()
}

/// Compares with tests/golden/NAME; `UPDATE_GOLDEN=1` rewrites the file instead. Numbers are
/// compared to 6 decimals: another CPU's SIMD may round the last bits of a loss differently.
fn golden(name: &str, actual: &str) {
    let rounded = regex::Regex::new(r"\d+\.\d{7,}")
        .unwrap()
        .replace_all(actual, |c: &regex::Captures| {
            format!("{:.6}", c[0].parse::<f64>().unwrap())
        });
    let actual = rounded.as_ref();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual, expected,
        "{name} differs from the golden file (UPDATE_GOLDEN=1 to accept)"
    );
}

#[test]
fn every_format_matches_its_golden_output() {
    let (dir, runs) = fixture();
    golden("report.table", &report(dir.path(), &runs, &[]));
    // Its rows would be 103 columns with two spaces between columns: it narrows to fit 100.
    let table = report(dir.path(), &runs, &[]);
    for line in table.lines().filter(|l| !l.starts_with("damaged:")) {
        assert!(line.chars().count() <= 100, "{line}");
    }
    golden("report.md", &report(dir.path(), &runs, &["--format", "md"]));
    golden(
        "report.csv",
        &report(dir.path(), &runs, &["--format", "csv"]),
    );
    golden(
        "report.json",
        &report(dir.path(), &runs, &["--format", "json"]),
    );
}

#[test]
fn seeds_aggregate_splits_separate_and_nothing_crashes() {
    let (dir, runs) = fixture();
    let json: serde_json::Value =
        serde_json::from_str(&report(dir.path(), &runs, &["--format", "json"])).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(
        json["groups"].as_array().unwrap().len(),
        2,
        "two splits, two groups"
    );
    assert_eq!(json["damaged"].as_array().unwrap().len(), 1);

    // Mean and sample std over the seeds, against the runs' own summaries.
    for lr in ["0.01", "0.003"] {
        let best: Vec<f64> = walk(&runs)
            .into_iter()
            .filter(|p| p.ends_with("config.toml"))
            .filter(|p| {
                let config: toml::Table =
                    toml::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
                config["name"].as_str() == Some("rnn")
                    && config["schedule"]["learning_rate"].as_float() == lr.parse().ok()
            })
            .map(|p| {
                makemore::rundir::read_summary(p.parent().unwrap())
                    .unwrap()
                    .best_test_loss
                    .unwrap()
            })
            .collect();
        assert_eq!(best.len(), 2, "two seeds at {lr}");
        let mean = best.iter().sum::<f64>() / 2.0;
        let std = (best.iter().map(|b| (b - mean).powi(2)).sum::<f64>()).sqrt();
        let row = rows
            .iter()
            .find(|r| {
                r["keys"]["schedule.learning_rate"] == lr
                    && r["seeds"].as_array().unwrap().len() == 2
            })
            .unwrap();
        assert!((row["best_test_loss"]["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
        assert!((row["best_test_loss"]["std"].as_f64().unwrap() - std).abs() < 1e-12);
        assert_eq!(row["best_test_loss"]["n"], 2);
        assert_eq!(row["seeds"].as_array().unwrap().len(), 2);
    }
    let statuses: Vec<&str> = rows.iter().map(|r| r["status"].as_str().unwrap()).collect();
    // The failed and the running run share a configuration: the row counts each status.
    assert!(statuses.contains(&"failed 1, running 1"), "{statuses:?}");
    // Sorted by test loss within each group.
    for pair in rows.windows(2) {
        if pair[0]["group"] == pair[1]["group"] {
            assert!(
                pair[0]["best_test_loss"]["mean"].as_f64()
                    <= pair[1]["best_test_loss"]["mean"].as_f64()
            );
        }
    }
}

#[test]
fn filter_by_top_and_plot() {
    let (dir, runs) = fixture();
    let csv = report(
        dir.path(),
        &runs,
        &["--format", "csv", "--filter", "schedule.learning_rate=0.01"],
    );
    assert_eq!(csv.lines().count(), 3, "0.01 in each group: {csv}");
    let csv = report(
        dir.path(),
        &runs,
        &["--format", "csv", "--by", "model.type"],
    );
    assert_eq!(csv.lines().count(), 3, "one row per group: {csv}");
    let csv = report(dir.path(), &runs, &["--format", "csv", "--top", "1"]);
    assert_eq!(csv.lines().count(), 3, "the best of each group: {csv}");
    let out = makemore(
        &[
            "report",
            runs.to_str().unwrap(),
            "--filter",
            "model.colour=red",
        ],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));

    let svg = dir.path().join("curves.svg");
    let out = makemore(
        &[
            "report",
            runs.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
        ],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&svg).unwrap();
    let document = roxmltree::Document::parse(&text).expect("well-formed SVG");
    assert_eq!(document.root_element().tag_name().name(), "svg");
    let lines = document
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .count();
    assert!(
        lines >= 4,
        "a curve per configuration, and the axes: {lines}"
    );
}
