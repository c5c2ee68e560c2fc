//! What a user who cloned the project meets, with no `../shared` beside it: every shipped file
//! checks and every shipped experiment trains, `check` counts the parameters the run then has,
//! and the README's first command prints the figures the README quotes.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{makemore, stderr, stdout};

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files a clone of the working tree holds under `dirs` (tracked, or new and not ignored),
/// copied into `to`: the clone a user gets, without building the crate again.
fn clone_into(to: &Path, dirs: &[&str]) {
    let listed = Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
            "--",
        ])
        .args(dirs)
        .current_dir(repository())
        .output()
        .expect("git lists the repository's files");
    assert!(listed.status.success(), "{}", stderr(&listed));
    let names = String::from_utf8(listed.stdout).unwrap();
    for name in names.split('\0').filter(|n| !n.is_empty()) {
        let target = to.join(name);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        if repository().join(name).is_file() {
            fs::copy(repository().join(name), target).unwrap();
        }
    }
}

/// A directory `clone/` with the shipped experiments and data, alone in a fresh directory: a
/// path to `../shared` (or anywhere outside the clone) fails here.
fn fresh_clone() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("clone");
    clone_into(&clone, &["experiments", "data"]);
    assert!(!dir.path().join("shared").exists());
    (dir, clone)
}

fn experiment_files(clone: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(clone.join("experiments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    files
}

fn is_sweep(file: &Path) -> bool {
    let table: toml::Table = fs::read_to_string(file).unwrap().parse().unwrap();
    table.contains_key("experiment")
}

#[test]
fn every_shipped_file_checks_and_every_experiment_trains_from_a_fresh_clone() {
    let (_dir, clone) = fresh_clone();
    let mut counted = BTreeMap::new();
    for file in experiment_files(&clone) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let rel = format!("experiments/{name}");
        let out = makemore(&["check", &rel], &clone, &[]);
        assert_eq!(out.status.code(), Some(0), "check {name}: {}", stderr(&out));
        if is_sweep(&file) {
            assert!(
                stdout(&out).contains("a sweep file"),
                "{name}: {}",
                stdout(&out)
            );
            let out = makemore(&["sweep", &rel, "--dry-run"], &clone, &[]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "dry run {name}: {}",
                stderr(&out)
            );
            continue;
        }
        let checked: usize = stdout(&out)
            .lines()
            .find_map(|l| {
                l.strip_prefix("# ")?
                    .strip_suffix(" parameters")?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{name}: no parameter count in {}", stdout(&out)));
        let out = makemore(
            &["run", &rel, "--set", "schedule.steps=20", "--runs", "runs"],
            &clone,
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "run {name}: {}", stderr(&out));
        let run = common::only_run(&clone.join("runs"), name.trim_end_matches(".toml"));
        let summary: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary["status"], "done", "{name}");
        let trained = summary["params"].as_u64().unwrap() as usize;
        assert_eq!(checked, trained, "{name}: check counts what the run holds");
        counted.insert(summary["model_type"].as_str().unwrap().to_string(), trained);
    }
    // Every family is among the shipped experiments; the bigram's table is 27 × 27 (26 letters
    // and the start/stop token), the Transformer's count makemore.py's (204,544 on names).
    for family in common::FAMILIES {
        assert!(counted.contains_key(family), "{family}: {counted:?}");
    }
    assert_eq!(counted["bigram"], 27 * 27);
    assert_eq!(counted["transformer"], 204_544);
}

/// The README's first command, and the figures the README says it ends with.
#[test]
fn the_readme_first_command_prints_the_readme_figures() {
    let readme = fs::read_to_string(repository().join("README.md")).unwrap();
    let command = readme
        .lines()
        .find(|l| l.starts_with("cargo run --release -- run "))
        .expect("the README's first command");
    let runs = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = command
        .split('#')
        .next()
        .unwrap()
        .split_whitespace()
        .skip(4)
        .collect();
    let runs_arg = runs.path().display().to_string();
    args.extend(["--runs", &runs_arg]);
    let quoted = |label: &str| -> Vec<f64> {
        let line = readme
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("the README quotes no line starting {label:?}"));
        figures(line)
    };
    let (last, selected) = (
        quoted("last model (nats per character"),
        quoted("selected on val at step"),
    );
    let out = makemore(&args, &repository(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    let line = |label: &str| {
        figures(
            printed
                .lines()
                .find(|l| l.starts_with(label))
                .unwrap_or_else(|| panic!("no {label:?} line in {printed}")),
        )
    };
    // The same binary gives the same losses bit for bit on one machine; another CPU's matrix
    // kernels may round differently, which 2,000 steps can carry to the fourth decimal.
    for (quoted, printed) in [
        (last, line("last model (nats per character")),
        (selected, line("selected on val at step")),
    ] {
        assert_eq!(quoted.len(), printed.len(), "{quoted:?} {printed:?}");
        for (q, p) in quoted.iter().zip(&printed) {
            assert!(
                (q - p).abs() <= 0.005 * q.abs().max(1.0),
                "README {quoted:?}, run {printed:?}"
            );
        }
    }
}

/// The numbers of a line, in order ("step 2000: val 2.1 | test 2.0 ± 0.01" gives 2000, 2.1, …).
fn figures(line: &str) -> Vec<f64> {
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.trim_matches('.').parse().ok())
        .collect()
}
