//! The kill campaign: `kill -9` at 20 moments of a run and of a `sweep -j 2`, spread over their
//! whole length. Every directory stays readable by `report`, and going on (`run --resume`, the
//! same sweep again) ends with the losses of an uninterrupted run, bit for bit.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{experiment, losses, makemore, only_run, run_dirs, stderr, stdout, write};

const MOMENTS: u64 = 20;

/// The i-th of `MOMENTS` moments spread over `length`, each jittered within its slot by a fixed
/// sequence, so that every part of the run is hit and every run of the test hits the same.
fn moment(i: u64, length: Duration) -> Duration {
    let jitter = (i.wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0;
    length.mul_f64((i as f64 + jitter) / MOMENTS as f64)
}

fn start(dir: &Path, args: &[&str]) -> Child {
    common::command(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `report` reads every run below `runs`, none of them damaged.
fn assert_readable(dir: &Path, round: u64) {
    if !dir.join("runs").exists() {
        return;
    }
    let out = makemore(&["report", "runs"], dir, &[]);
    let printed = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(0), "round {round}: {printed}");
    assert!(!printed.contains("damaged"), "round {round}: {printed}");
}

const STEPS: &str = "schedule.steps=2000";
const CHECKPOINTS: &str = "schedule.eval_every=100";

#[test]
fn a_run_killed_anywhere_resumes_to_the_same_losses() {
    let reference = tempfile::tempdir().unwrap();
    experiment(reference.path(), "mlp", "");
    let args = [
        "run",
        "mlp.toml",
        "--runs",
        "runs",
        "--set",
        STEPS,
        "--set",
        CHECKPOINTS,
    ];
    let started = std::time::Instant::now();
    let out = makemore(&args, reference.path(), &[]);
    let length = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = losses(&only_run(&reference.path().join("runs"), "mlp"));

    let mut resumed = 0;
    for round in 0..MOMENTS {
        let dir = tempfile::tempdir().unwrap();
        experiment(dir.path(), "mlp", "");
        let mut child = start(dir.path(), &args);
        std::thread::sleep(moment(round, length));
        common::signal(&child, "-9");
        child.wait().unwrap();
        assert_readable(dir.path(), round);
        let runs = run_dirs(&dir.path().join("runs/mlp"));
        // Killed before the run had begun (no directory yet, or one without its summary, which
        // report passes over and resume refuses): nothing to go on with.
        let Some(run) = runs.last().filter(|r| r.join("summary.json").exists()) else {
            continue;
        };
        let out = makemore(&["run", "--resume", run.to_str().unwrap()], dir.path(), &[]);
        assert!(out.status.success(), "round {round}: {}", stderr(&out));
        assert_eq!(losses(run), expected, "round {round}");
        resumed += 1;
    }
    assert!(resumed >= MOMENTS - 2, "only {resumed} kills left a run");
}

#[test]
fn a_sweep_killed_anywhere_goes_on_to_the_same_losses() {
    let grid = |dir: &Path| {
        experiment(dir, "mlp", "\n[backend]\nthreads = 1\n");
        write(
            dir,
            "grid.toml",
            "name = \"g\"\nexperiment = \"mlp.toml\"\n[set]\n\"schedule.steps\" = 1000\n\
             \"schedule.eval_every\" = 50\n[grid]\nseed = [1, 2, 3]\n",
        )
    };
    let sweep = ["sweep", "grid.toml", "-j", "2"];
    let reference = tempfile::tempdir().unwrap();
    grid(reference.path());
    let started = std::time::Instant::now();
    let out = makemore(&sweep, reference.path(), &[]);
    let length = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let trials: Vec<_> = std::fs::read_dir(reference.path().join("runs/g"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("summary.json").exists())
        .collect();
    assert_eq!(trials.len(), 3);

    for round in 0..MOMENTS {
        let dir = tempfile::tempdir().unwrap();
        grid(dir.path());
        let mut child = start(dir.path(), &sweep);
        std::thread::sleep(moment(round, length));
        // Odd rounds kill the trials outright too; even ones leave them to notice their
        // sweep's death (they checkpoint and stop).
        if round % 2 == 1 {
            Command::new("pkill")
                .args(["-9", "-P", &child.id().to_string()])
                .status()
                .unwrap();
        }
        common::signal(&child, "-9");
        child.wait().unwrap();
        // The trials of an even round end on their own, at most a step and a checkpoint later.
        std::thread::sleep(Duration::from_millis(300));
        assert_readable(dir.path(), round);
        let out = makemore(&sweep, dir.path(), &[]);
        assert!(out.status.success(), "round {round}: {}", stderr(&out));
        for trial in &trials {
            let id = trial.file_name().unwrap();
            let run = dir.path().join("runs/g").join(id);
            let log = std::fs::read_to_string(
                dir.path()
                    .join("runs/g/logs")
                    .join(format!("{}.log", id.to_string_lossy())),
            )
            .unwrap_or_default();
            assert_eq!(
                losses(&run),
                losses(trial),
                "round {round}: {id:?}: {}\n{log}",
                stdout(&out)
            );
        }
    }
}
