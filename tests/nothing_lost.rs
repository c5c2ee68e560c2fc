//! Nothing lost, nothing silent: a sweep never replaces a trial it cannot read, run directories
//! appear whole, a halving search ends with a winner or says why not, and figures that are not
//! numbers fail the run instead of passing as results.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{experiment, makemore, only_run, snapshot, stderr, stdout, write};
use makemore::checkpoint::Checkpoint;
use makemore::rundir::read_summary;

/// `grid.toml`: the sweep `g` of two tiny bigram trials (seeds 1 and 2).
fn two_trials(dir: &Path) {
    experiment(dir, "bigram", "\n[backend]\nthreads = 1\n");
    write(
        dir,
        "grid.toml",
        "name = \"g\"\nexperiment = \"bigram.toml\"\n[grid]\nseed = [1, 2]\n",
    );
}

/// `two_trials`, run to their end; the first trial's directory.
fn finished_sweep(dir: &Path) -> PathBuf {
    two_trials(dir);
    let out = makemore(&["sweep", "grid.toml", "--runs", "runs"], dir, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = manifest(&dir.join("runs/g"))[0].clone();
    dir.join("runs/g").join(id)
}

/// The trial ids of the sweep in `sweep`, in index order.
fn manifest(sweep: &Path) -> Vec<String> {
    let text = fs::read_to_string(sweep.join("trials.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect()
}

/// A finished trial whose summary.json cannot be read (no permission, a status this version does
/// not know, half written, not a file) is an error naming the trial when the sweep is started
/// again, and every file of it stays as it was. (As root, permission 000 does not stop a read:
/// the trial is then simply done.)
#[test]
fn a_sweep_started_again_never_replaces_a_trial_it_cannot_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let trial = finished_sweep(dir.path());
    let summary = trial.join("summary.json");
    let text = fs::read_to_string(&summary).unwrap();
    let damages: [(&str, &dyn Fn()); 4] = [
        ("permission 000", &|| {
            fs::set_permissions(&summary, fs::Permissions::from_mode(0o000)).unwrap()
        }),
        ("unknown status", &|| {
            let archived = text.replace("\"status\": \"done\"", "\"status\": \"archived\"");
            fs::write(&summary, archived).unwrap()
        }),
        ("half written", &|| {
            fs::write(&summary, &text[..text.len() / 2]).unwrap()
        }),
        ("a directory", &|| {
            fs::remove_file(&summary).unwrap();
            fs::create_dir(&summary).unwrap()
        }),
    ];
    for (damage, make) in damages {
        make();
        let before = snapshot(&trial);
        let dry = makemore(
            &["sweep", "grid.toml", "--runs", "runs", "--dry-run"],
            dir.path(),
            &[],
        );
        let out = makemore(&["sweep", "grid.toml", "--runs", "runs"], dir.path(), &[]);
        let readable = fs::read_to_string(&summary).is_ok_and(|t| t == text);
        if readable {
            assert!(out.status.success(), "{damage}: {}", stderr(&out));
        } else {
            assert_eq!(out.status.code(), Some(2), "{damage}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("trial 0"),
                "{damage}: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains("left as it is"),
                "{damage}: {}",
                stderr(&out)
            );
            assert!(
                stdout(&dry).contains("refuse"),
                "{damage}: {}",
                stdout(&dry)
            );
        }
        assert_eq!(
            snapshot(&trial),
            before,
            "{damage}: the trial's files changed"
        );
        // Repaired, the sweep has nothing left to do.
        if summary.is_dir() {
            fs::remove_dir(&summary).unwrap();
        }
        fs::write(&summary, &text).unwrap();
        fs::set_permissions(&summary, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = makemore(&["sweep", "grid.toml", "--runs", "runs"], dir.path(), &[]);
    assert!(stdout(&out).contains("2 done before"), "{}", stdout(&out));
}

/// A trial directory an older version left without a summary (nor a checkpoint) provably never
/// got one: it is replaced and its trial trained; a half-made hidden directory beside it too.
#[test]
fn only_a_trial_that_never_got_a_summary_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let trial = finished_sweep(dir.path());
    fs::remove_file(trial.join("summary.json")).unwrap();
    let out = makemore(&["sweep", "grid.toml", "--runs", "runs"], dir.path(), &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "checkpoints are kept: {}",
        stderr(&out)
    );
    fs::remove_dir_all(trial.join("checkpoints")).unwrap();
    let partial = trial.with_file_name(format!(
        ".{}.partial",
        trial.file_name().unwrap().to_string_lossy()
    ));
    fs::create_dir(&partial).unwrap();
    let out = makemore(&["sweep", "grid.toml", "--runs", "runs"], dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(read_summary(&trial).is_ok_and(|s| s.step == 60));
    assert!(!partial.exists());
}

/// A run directory is visible only once its config.toml and summary.json are in it.
#[test]
fn a_run_directory_appears_whole() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "transformer", "");
    let mut child = common::command(dir.path())
        .args(["run", "transformer.toml", "--runs", "runs"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let runs = dir.path().join("runs/transformer");
    let run = common::wait_for("the run directory", || {
        let entries = fs::read_dir(&runs).ok()?;
        let visible: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        visible.into_iter().next()
    });
    assert!(run.join("config.toml").is_file() && run.join("summary.json").is_file());
    assert!(child.wait().unwrap().success());
    let hidden: Vec<_> = fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(hidden.is_empty(), "a half-made directory is left");
}

/// A halving search over bigrams whose learning rates are `rates` (1e30 diverges at once and
/// fails its trial), with `extra` in `[set]`.
fn halving(dir: &Path, rates: &str, extra: &str) {
    experiment(dir, "bigram", "\n[backend]\nthreads = 1\n");
    write(
        dir,
        "search.toml",
        &format!(
            "name = \"h\"\nexperiment = \"bigram.toml\"\n[set]\n\"dataset.val_fraction\" = 0.25\n{extra}\n\
             [grid]\n\"schedule.learning_rate\" = {rates}\n\
             [search]\nmethod = \"halving\"\neta = 2\nmin_steps = 20\nmax_steps = 40\n"
        ),
    );
}

fn search(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["sweep", "search.toml", "--runs", "runs"];
    all.extend_from_slice(args);
    makemore(&all, dir, &[])
}

#[test]
fn a_search_whose_every_trial_fails_says_so_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    halving(dir.path(), "[1e30, 1e31]", "");
    let out = search(dir.path(), &[]);
    let said = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("every trial failed"), "{said}");
    assert!(said.contains("diverged"), "the reason is given: {said}");
}

#[test]
fn a_search_with_one_failed_trial_names_it_and_still_has_a_winner() {
    let dir = tempfile::tempdir().unwrap();
    halving(dir.path(), "[1e-2, 1e30, 3e-2]", "");
    let out = search(dir.path(), &[]);
    let said = stdout(&out) + &stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("winner: trial"), "{said}");
    assert!(
        said.contains("trial 1") && said.contains("failed"),
        "{said}"
    );
    assert!(said.contains("diverged"), "the reason is given: {said}");
}

#[test]
fn fail_fast_stops_a_search_at_its_first_failure() {
    let dir = tempfile::tempdir().unwrap();
    halving(dir.path(), "[1e30, 1e-2, 3e-2, 1e-3]", "");
    let out = search(dir.path(), &["--fail-fast"]);
    let said = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("--fail-fast"), "{said}");
    // The one worker stopped at the failed trial: no other trial trained.
    let sweep = dir.path().join("runs/h");
    let ids = manifest(&sweep);
    assert_eq!(ids.len(), 4);
    let trained = ids
        .iter()
        .filter(|id| read_summary(&sweep.join(id)).is_ok())
        .count();
    assert_eq!(trained, 1, "{said}");
}

/// Rungs at 20 and 40 steps with an evaluation every 50: each rung is evaluated at its own step,
/// so that it has scores and the search a winner.
#[test]
fn every_rung_has_scores_when_evaluations_fall_between_rungs() {
    let dir = tempfile::tempdir().unwrap();
    halving(dir.path(), "[1e-2, 3e-2]", "\"schedule.eval_every\" = 50\n");
    let out = search(dir.path(), &[]);
    let said = stdout(&out) + &stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("winner: trial"), "{said}");
    let rung0 = said.split("rung 0:").nth(1).unwrap();
    assert!(!rung0.lines().nth(1).unwrap().contains("  -  "), "{said}");
}

/// A search without a validation split ranks on test: the sweep says so at its start and at
/// its winner.
#[test]
fn a_search_that_ranks_on_test_warns_at_its_start_and_its_winner() {
    let dir = tempfile::tempdir().unwrap();
    halving(
        dir.path(),
        "[1e-2, 3e-2]",
        "\"dataset.val_fraction\" = 0.0\n",
    );
    // [set] may not name val_fraction twice: write the file without the first.
    let text = fs::read_to_string(dir.path().join("search.toml")).unwrap();
    let text = text.replacen("\"dataset.val_fraction\" = 0.25\n", "", 1);
    fs::write(dir.path().join("search.toml"), text).unwrap();
    let out = search(dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let warnings = stderr(&out).matches("no validation split").count();
    assert_eq!(warnings, 2, "{}", stderr(&out));
}

/// A temperature below f32's range gives the limit of ever colder sampling, the argmax: every
/// sample is the one of a temperature f32 still holds, not `zzzz…`.
#[test]
fn a_temperature_below_f32_samples_the_most_likely_characters() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    let out = makemore(&["run", "bigram.toml", "--runs", "runs"], dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = only_run(&dir.path().join("runs"), "bigram");
    let run = run.to_str().unwrap();
    let draw = |t: &str| {
        let out = makemore(
            &["sample", run, "-n", "8", "--temperature", t],
            dir.path(),
            &[],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let cold = draw("1e-6");
    let first = cold.lines().next().unwrap().to_string();
    assert!(cold.lines().all(|l| l == first), "{cold}");
    for t in ["1e-40", "1e-45", "1e-300"] {
        assert_eq!(draw(t), cold, "--temperature {t}");
    }
}

/// A counts model without smoothing gives a test item's unseen pair probability 0: the run fails
/// with why, instead of ending `done` with losses that are not numbers.
#[test]
fn a_loss_that_is_not_a_number_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "counts", "");
    write(dir.path(), "test.txt", "qxz\n");
    let out = makemore(
        &[
            "run",
            "counts.toml",
            "--runs",
            "runs",
            "--set",
            "dataset.test_path=test.txt",
            "--set",
            "model.smoothing=0",
        ],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let summary = read_summary(&only_run(&dir.path().join("runs"), "counts")).unwrap();
    assert_eq!(summary.status, makemore::rundir::Status::Failed);
    assert!(summary.error.unwrap().contains("the test loss is"));
}

/// A process killed between writing last.ckpt and best.ckpt at an improving evaluation leaves
/// the older best.ckpt: the resume restores the pair, and its selection, before going on, so the
/// run ends as an uninterrupted one, even when the resume trains for longer.
#[test]
fn a_resume_restores_the_best_checkpoint_a_kill_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    let go = |args: &[&str]| {
        let out = makemore(args, dir.path(), &[]);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    go(&["run", "bigram.toml", "--runs", "runs", "--until", "20"]);
    let run = only_run(&dir.path().join("runs"), "bigram");
    let best = run.join("checkpoints/best.ckpt");
    let before = fs::read(&best).unwrap();
    let r = run.to_str().unwrap();
    go(&["run", "--resume", r, "--until", "40"]);
    let last = Checkpoint::read(&run.join("checkpoints/last.ckpt")).unwrap();
    assert_eq!(
        last.best_step,
        Some(40),
        "the test needs an improving evaluation at 40"
    );
    fs::write(&best, before).unwrap();
    go(&["run", "--resume", r, "--set", "schedule.steps=80"]);
    let resumed = read_summary(&run).unwrap();

    go(&[
        "run",
        "bigram.toml",
        "--runs",
        "straight",
        "--set",
        "schedule.steps=80",
    ]);
    let straight = read_summary(&only_run(&dir.path().join("straight"), "bigram")).unwrap();
    assert_eq!(resumed.selected_step, straight.selected_step);
    assert_eq!(resumed.test_loss, straight.test_loss);
}

/// A run killed before its first checkpoint starts over when resumed: its event file keeps none
/// of the records of the start it replaces, as metrics.csv keeps none of its rows.
#[test]
fn starting_over_keeps_no_event_records() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    let out = makemore(&["run", "bigram.toml", "--runs", "runs"], dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = only_run(&dir.path().join("runs"), "bigram");
    let events = |run: &Path| {
        let file = fs::read_dir(run)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("events."))
            .unwrap();
        fs::metadata(file.path()).unwrap().len()
    };
    let whole = events(&run);
    // As if killed before its first evaluation: no checkpoint, the summary still running.
    fs::remove_dir_all(run.join("checkpoints")).unwrap();
    let summary = fs::read_to_string(run.join("summary.json")).unwrap();
    fs::write(
        run.join("summary.json"),
        summary.replace("\"status\": \"done\"", "\"status\": \"running\""),
    )
    .unwrap();
    let out = makemore(&["run", "--resume", run.to_str().unwrap()], dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(events(&run), whole, "the event file holds each record once");
}

/// A grid trial that another live worker holds is left to it: the sweep does not count it as
/// done, and ends with that trial still to do.
#[test]
fn a_trial_held_elsewhere_is_not_counted_as_finished() {
    let dir = tempfile::tempdir().unwrap();
    two_trials(dir.path());
    let dry = makemore(
        &["sweep", "grid.toml", "--runs", "runs", "--dry-run"],
        dir.path(),
        &[],
    );
    let held = stdout(&dry)
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    // This test's own process holds the claim: its pid and its start, as /proc says.
    let stat = fs::read_to_string("/proc/self/stat").unwrap();
    let start = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    let host = String::from_utf8(
        std::process::Command::new("hostname")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let claims = dir.path().join("runs/g/claims");
    fs::create_dir_all(&claims).unwrap();
    let claim = format!("{} {} {start} 0\n", host.trim(), std::process::id());
    fs::write(claims.join(format!("{held}.0")), claim).unwrap();
    let out = makemore(&["sweep", "grid.toml", "--runs", "runs"], dir.path(), &[]);
    let said = stdout(&out);
    assert!(
        said.contains("trial 0 left to the worker that holds it"),
        "{said}"
    );
    assert!(said.contains("1 of 2 trials done"), "{said}");
}

/// `sample` on a sweep's directory takes the trial that started last, not the largest hash.
#[test]
fn the_newest_run_of_a_sweep_is_the_one_started_last() {
    let dir = tempfile::tempdir().unwrap();
    finished_sweep(dir.path());
    let last = manifest(&dir.path().join("runs/g"))[1].clone();
    let out = makemore(&["sample", "runs/g", "-n", "1"], dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("runs/g/{last}")),
        "{}",
        stderr(&out)
    );
}
