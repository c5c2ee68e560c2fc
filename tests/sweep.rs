//! Sweeps: grid expansion and trial ids, idempotent re-runs (skip, resume, retry), concurrent
//! workers, scheduler indices, emitted scripts and bad grid files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{experiment, losses, makemore, stderr, stdout, write};

/// A grid of 4 tiny mlp trials (2 widths × 2 seeds) over `mlp.toml`.
fn grid(dir: &Path, extra: &str) -> PathBuf {
    experiment(dir, "mlp", "\n[backend]\nthreads = 1\n");
    write(
        dir,
        "grid.toml",
        &format!(
            "name = \"g\"\nexperiment = \"mlp.toml\"\n\n[set]\n\"schedule.steps\" = 40\n\n\
             [grid]\n\"model.n_embd\" = [4, 8]\nseed = [1, 2]\n{extra}"
        ),
    )
}

fn sweep(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut all = vec!["sweep", "grid.toml"];
    all.extend_from_slice(args);
    makemore(&all, dir, env)
}

/// (index, id, status) of each trial of the grid `g`, from the manifest.
fn manifest(dir: &Path) -> Vec<(String, String, String)> {
    manifest_of(&dir.join("runs/g"))
}

/// (index, id) from `--dry-run`.
fn dry_run_ids(dir: &Path, args: &[&str]) -> Vec<(String, String)> {
    let mut all = vec!["--dry-run"];
    all.extend_from_slice(args);
    let out = sweep(dir, &all, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].into(), f[1].into())
        })
        .collect()
}

#[test]
fn the_grid_expands_to_stable_ids() {
    let dir = tempfile::tempdir().unwrap();
    grid(
        dir.path(),
        "\n[[trial]]\n\"model.n_embd\" = 16\nseed = 1\n\n[[trial]]\n\"model.n_embd\" = 4\nseed = 1\n",
    );
    let ids = dry_run_ids(dir.path(), &[]);
    // 2 × 2 from the grid, one new [[trial]]; the other repeats trial 0.
    assert_eq!(ids.len(), 5, "{ids:?}");
    let distinct: std::collections::BTreeSet<_> = ids.iter().map(|(_, id)| id).collect();
    assert_eq!(distinct.len(), 5);
    assert_eq!(ids, dry_run_ids(dir.path(), &[]), "same grid, same ids");
    // The id does not depend on where the data lies or on the thread count...
    std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
    std::fs::copy(
        dir.path().join("names.txt"),
        dir.path().join("elsewhere/names.txt"),
    )
    .unwrap();
    let moved = dry_run_ids(
        dir.path(),
        &[
            "--set",
            "dataset.path=elsewhere/names.txt",
            "--set",
            "backend.threads=2",
        ],
    );
    assert_eq!(ids, moved);
    // ... but a changed value is a new trial.
    let changed = dry_run_ids(dir.path(), &["--set", "schedule.steps=41"]);
    assert!(ids.iter().zip(&changed).all(|(a, b)| a.1 != b.1));
}

#[test]
fn a_second_sweep_skips_finished_trials_and_retries_failed_ones() {
    let dir = tempfile::tempdir().unwrap();
    grid(dir.path(), "");
    let out = sweep(dir.path(), &["-j", "2"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let trials = manifest(dir.path());
    assert_eq!(trials.len(), 4);
    assert!(trials.iter().all(|t| t.2 == "done"), "{trials:?}");
    let run = |id: &str| dir.path().join("runs/g").join(id);
    let samples = |t: &(String, String, String)| {
        std::fs::read_to_string(run(&t.1).join("samples.txt")).unwrap()
    };
    let before: Vec<String> = trials.iter().map(|t| losses(&run(&t.1))).collect();
    let samples_before: Vec<String> = trials.iter().map(samples).collect();

    // Trial 1 failed in its final evaluation, after its last checkpoint (as a crash that left its
    // summary saying so would); trial 2 before its first checkpoint.
    for (trial, keep_checkpoints) in [(1, true), (2, false)] {
        if !keep_checkpoints {
            std::fs::remove_dir_all(run(&trials[trial].1).join("checkpoints")).unwrap();
        }
        let summary = run(&trials[trial].1).join("summary.json");
        let text = std::fs::read_to_string(&summary).unwrap();
        std::fs::write(&summary, text.replace("\"done\"", "\"failed\"")).unwrap();
    }
    let out = sweep(dir.path(), &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("2 done before, 2 to go"),
        "{}",
        stdout(&out)
    );
    assert!(manifest(dir.path()).iter().all(|t| t.2 == "done"));
    let after: Vec<String> = trials.iter().map(|t| losses(&run(&t.1))).collect();
    assert_eq!(before, after);
    let samples_after: Vec<String> = trials.iter().map(samples).collect();
    assert_eq!(samples_before, samples_after);

    let out = sweep(dir.path(), &[], &[]);
    assert!(
        stdout(&out).contains("4 done before, 0 to go"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn an_interrupted_trial_resumes_to_the_same_losses() {
    let dir = tempfile::tempdir().unwrap();
    grid(dir.path(), "");
    let long = [
        "--set",
        "schedule.steps=3000",
        "--set",
        "schedule.eval_every=20",
    ];
    let reference = tempfile::tempdir().unwrap();
    grid(reference.path(), "");
    let mut args = vec!["--index", "0"];
    args.extend_from_slice(&long);
    let out = sweep(reference.path(), &args, &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The same trial through a whole sweep, killed outright once it has a checkpoint.
    let mut all = vec!["sweep", "grid.toml", "-j", "1"];
    all.extend_from_slice(&long);
    let mut child = common::command(Path::new("."))
        .args(&all)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = common::wait_for("a checkpoint", || {
        let run = std::fs::read_dir(dir.path().join("runs/g"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("checkpoints/last.ckpt").exists())?;
        Some(run.file_name().unwrap().to_string_lossy().into_owned())
    });
    common::signal(&child, "-9");
    child.wait().unwrap();
    // The trial process dies with its sweep (it is asked to checkpoint and stop).
    let claim = dir.path().join("runs/g/claims").join(format!("{id}.0"));
    let released = || std::fs::read_to_string(&claim).is_ok_and(|t| t == "released\n");
    let started = Instant::now();
    while !released() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let summary = makemore::rundir::read_summary(&dir.path().join("runs/g").join(&id)).unwrap();
    assert_ne!(summary.status, makemore::rundir::Status::Done);

    let mut args = vec!["--index", "0"];
    args.extend_from_slice(&long);
    let out = sweep(dir.path(), &args, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("going on"), "{}", stdout(&out));
    assert_eq!(
        losses(&dir.path().join("runs/g").join(&id)),
        losses(&reference.path().join("runs/g").join(&id))
    );
}

/// Claims planted as a killed, a restarted (its pid reused) or a vanished worker on another host
/// would have left them, and one a worker released: each is taken over, by one worker only.
fn plant_stale_claims(claims: &Path, ids: &[String]) {
    std::fs::create_dir_all(claims).unwrap();
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    let host = host.trim();
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let planted = [
        format!("{host} {dead_pid} 0 3\n"),
        // pid 1 is alive, but it did not start at tick 1: its pid was reused.
        format!("{host} 1 1 0\n"),
        "released\n".to_string(),
        "elsewhere 42 0 9\n".to_string(),
    ];
    for (id, text) in ids.iter().zip(planted) {
        let path = claims.join(format!("{id}.0"));
        std::fs::write(&path, &text).unwrap();
        if text.starts_with("elsewhere") {
            let file = std::fs::File::options().append(true).open(&path).unwrap();
            file.set_modified(long_ago).unwrap();
        }
    }
}

/// Four sweeps of one grid at once, two trials each at a time, over stale claims: every trial
/// runs, and exactly once. Repeated, as a race shows only now and then.
#[test]
fn concurrent_sweeps_run_each_trial_once() {
    let template = tempfile::tempdir().unwrap();
    grid(template.path(), "");
    let ids: Vec<String> = dry_run_ids(template.path(), &[])
        .into_iter()
        .map(|t| t.1)
        .collect();
    for round in 0..50 {
        let dir = tempfile::tempdir().unwrap();
        experiment(dir.path(), "bigram", "\n[backend]\nthreads = 1\n");
        let grid_text = std::fs::read_to_string(template.path().join("grid.toml")).unwrap();
        let grid_text = grid_text
            .replace("mlp.toml", "bigram.toml")
            .replace("= 40", "= 4");
        write(dir.path(), "grid.toml", &grid_text);
        plant_stale_claims(&dir.path().join("runs/g/claims"), &ids);
        let workers: Vec<_> = (0..4)
            .map(|_| {
                common::command(Path::new("."))
                    .args(["sweep", "grid.toml", "-j", "2"])
                    .current_dir(dir.path())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for worker in workers {
            let out = worker.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {} {}",
                stderr(&out),
                common::stdout(&out)
            );
        }
        let trials = manifest(dir.path());
        assert!(
            trials.iter().all(|t| t.2 == "done"),
            "round {round}: {trials:?}"
        );
        for (_, id, _) in trials {
            let log =
                std::fs::read_to_string(dir.path().join(format!("runs/g/logs/{id}.log"))).unwrap();
            assert_eq!(log.matches(": starting").count(), 1, "round {round}: {log}");
            assert!(!log.contains("going on"), "round {round}: {log}");
            let train_log =
                std::fs::read_to_string(dir.path().join(format!("runs/g/{id}/train.log"))).unwrap();
            assert_eq!(
                train_log
                    .matches("last model (nats per character, every item)")
                    .count(),
                1
            );
        }
    }
}

/// A worker that read another's trial as running must not write its manifest over the one that
/// trial's worker writes when it ends (Slurm array tasks finishing together): workers write the
/// manifest under `trials.lock`, which this test holds while a worker finishes.
#[test]
fn the_manifest_is_written_under_a_lock() {
    let dir = tempfile::tempdir().unwrap();
    grid(dir.path(), "");
    let sweep_dir = dir.path().join("runs/g");
    std::fs::create_dir_all(&sweep_dir).unwrap();
    let lock = std::fs::File::create(sweep_dir.join("trials.lock")).unwrap();
    lock.lock().unwrap();
    let mut worker = common::command(Path::new("."))
        .args(["sweep", "grid.toml", "--index", "0"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = &dry_run_ids(dir.path(), &[])[0].1;
    let summary = sweep_dir.join(id).join("summary.json");
    let started = Instant::now();
    while !std::fs::read_to_string(&summary).is_ok_and(|s| s.contains("\"done\"")) {
        assert!(
            worker.try_wait().unwrap().is_none(),
            "the worker ended early"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the trial never ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker did not wait for the lock"
    );
    assert!(!sweep_dir.join("trials.csv").exists());
    drop(lock);
    let out = worker.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(manifest(dir.path())[0].2, "done");
}

/// A worker the sweep starts (`--share-cores`) takes the cores its fellows on this host leave
/// idle: alone, every core, as its log says; its numbers are those of its own one thread.
#[test]
fn a_lone_worker_takes_the_idle_cores_with_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    grid(dir.path(), "");
    let id = dry_run_ids(dir.path(), &[])[0].1.clone();
    let trial = |runs: &str, share: &[&str]| {
        let mut args = vec!["--index", "0", "--runs", runs];
        args.extend_from_slice(share);
        let out = sweep(dir.path(), &args, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let run = dir.path().join(runs).join("g").join(&id);
        let log = std::fs::read_to_string(run.join("train.log")).unwrap();
        (losses(&run), log)
    };
    let (shared, log) = trial("shared", &["--share-cores"]);
    let (own, own_log) = trial("own", &[]);
    assert_eq!(shared, own);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let grew = format!("step 1: on {cores} threads, cores the sweep's other workers left idle");
    assert_eq!(log.contains(&grew), cores > 1, "{log}");
    assert!(!own_log.contains("threads, cores"), "{own_log}");
}

#[test]
fn an_index_runs_exactly_one_trial() {
    let dir = tempfile::tempdir().unwrap();
    grid(dir.path(), "");
    let ids = dry_run_ids(dir.path(), &[]);
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], usize);
    let cases: [Case; 3] = [
        (&["--index", "1"], &[], 1),
        (&[], &[("SLURM_ARRAY_TASK_ID", "2")], 2),
        (&[], &[("JOB_COMPLETION_INDEX", "3")], 3),
    ];
    for (args, env, index) in cases {
        let out = sweep(dir.path(), args, env);
        assert!(out.status.success(), "{}", stderr(&out));
        let status = &manifest(dir.path())[index].2;
        assert_eq!(status, "done");
    }
    assert_eq!(manifest(dir.path())[0].2, "pending");
    assert!(!dir.path().join("runs/g").join(&ids[0].1).exists());

    let out = sweep(dir.path(), &["--index", "4"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has 4 trials (0 to 3)"),
        "{}",
        stderr(&out)
    );
    let out = sweep(dir.path(), &[], &[("SLURM_ARRAY_TASK_ID", "x")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("SLURM_ARRAY_TASK_ID=x"));
}

#[test]
fn scripts_for_schedulers() {
    let dir = tempfile::tempdir().unwrap();
    grid(dir.path(), "");
    let out = sweep(
        dir.path(),
        &[
            "--emit",
            "slurm",
            "--max-parallel",
            "2",
            "--time",
            "0:10:00",
            "--cpus-per-task",
            "1",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let script = std::fs::read_to_string(dir.path().join("runs/g/sweep.sbatch")).unwrap();
    for line in [
        "#SBATCH --array=0-3%2",
        "#SBATCH --time=0:10:00",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --signal=B:TERM@120",
        "#SBATCH --requeue",
    ] {
        assert!(script.contains(line), "{line} in\n{script}");
    }
    assert!(script.contains(" sweep ") && script.contains("grid.toml --runs "));
    let out = sweep(dir.path(), &["--emit", "list"], &[]);
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[3].ends_with("--index 3"), "{}", lines[3]);
}

/// A `[search]` draws its trials from the file alone: the same ids on every call, each drawn
/// value inside its range and in the trial's resolved config.toml, each draw run at every point
/// of the `[grid]` (2 widths × 2 seeds here). A draw that fails validation stops the sweep
/// before anything starts.
#[test]
fn a_random_search_draws_its_trials_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let search = "\n[search]\nmethod = \"random\"\ntrials = 3\nseed = 4\n\
                  \"schedule.learning_rate\" = { loguniform = [1e-3, 1e-1] }\n\
                  \"model.n_embd2\" = { int = [4, 12] }\n";
    grid(dir.path(), search);
    let ids = dry_run_ids(dir.path(), &[]);
    assert_eq!(ids.len(), 12, "{ids:?}");
    assert_eq!(ids, dry_run_ids(dir.path(), &[]), "same file, same trials");

    let out = sweep(dir.path(), &["-j", "2"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut draws = Vec::new();
    for (index, id, status) in manifest(dir.path()) {
        assert_eq!(status, "done", "trial {index}");
        let text = std::fs::read_to_string(dir.path().join("runs/g").join(&id).join("config.toml"));
        let config: toml::Table = toml::from_str(&text.unwrap()).unwrap();
        let lr = config["schedule"]["learning_rate"].as_float().unwrap();
        let width = config["model"]["n_embd2"].as_integer().unwrap();
        assert!((1e-3..=1e-1).contains(&lr), "{lr}");
        assert!((4..=12).contains(&width), "{width}");
        let point = (
            config["model"]["n_embd"].as_integer().unwrap(),
            config["seed"].as_integer().unwrap(),
        );
        draws.push(((lr.to_bits(), width), point));
    }
    // Trials 4k..4k+3 are draw k at the grid's 4 points; the 3 draws differ.
    for (k, chunk) in draws.chunks(4).enumerate() {
        assert!(
            chunk.iter().all(|(draw, _)| *draw == chunk[0].0),
            "draw {k}"
        );
        let points: Vec<_> = chunk.iter().map(|(_, point)| *point).collect();
        assert_eq!(points, [(4, 1), (4, 2), (8, 1), (8, 2)]);
    }
    let distinct: std::collections::BTreeSet<_> = draws.iter().map(|(draw, _)| *draw).collect();
    assert_eq!(distinct.len(), 3);

    std::fs::remove_dir_all(dir.path().join("runs")).unwrap();
    grid(dir.path(), &search.replace("[4, 12]", "[0, 0]"));
    let out = sweep(dir.path(), &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("model.n_embd2"), "{}", stderr(&out));
    assert!(!dir.path().join("runs").exists(), "nothing may start");
}

#[test]
fn bad_grid_files_are_rejected_with_file_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "\"model.n_layer\" = []\n",
            "grid.toml:10: grid key model.n_layer: must be a non-empty list",
        ),
        ("\"model.n_embdd\" = [1, 2]\n", "grid.toml:10"),
        (
            "[search]\nmethod = \"random\"\ntrials = 2\nseed = 1\nx = { uniform = [1, 0] }\n",
            "grid.toml:14: search key x: uniform needs finite bounds with a ≤ b",
        ),
        (
            "[search]\nmethod = \"random\"\ntrials = 2\nseed = 1\n\"model.n_embdd\" = [1, 2]\n",
            "grid.toml:14",
        ),
        (
            "\"sampling.temperature\" = [-1]\n",
            "sampling.temperature must be ≥ 0",
        ),
    ];
    for (extra, message) in cases {
        grid(dir.path(), extra);
        let out = sweep(dir.path(), &[], &[]);
        assert_eq!(out.status.code(), Some(2), "{extra}");
        let err = stderr(&out);
        assert!(err.contains(message), "{message} in {err}");
        assert!(!dir.path().join("runs").exists(), "nothing may start");
    }
    write(
        dir.path(),
        "grid.toml",
        "experiment = \"mlp.toml\"\ngird = 3\n",
    );
    let out = sweep(dir.path(), &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown field `gird`"),
        "{}",
        stderr(&out)
    );
    write(dir.path(), "grid.toml", "experiment = \"nope.toml\"\n");
    let out = sweep(dir.path(), &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("grid.toml:1: experiment"),
        "{}",
        stderr(&out)
    );
}

/// A halving search over a 3 × 3 grid of tiny Transformers (eta 3: 9 trials to `min`, 3 to
/// 3·`min`, 1 to 9·`min`), in `runs` below `dir`; `-j 2`.
fn halving_search(dir: &Path, min: usize) -> PathBuf {
    experiment(dir, "transformer", "\n[backend]\nthreads = 1\n");
    write(
        dir,
        "search.toml",
        &format!(
            "name = \"h\"\nexperiment = \"transformer.toml\"\n\n[set]\n\"schedule.eval_every\" = {}\n\"dataset.val_fraction\" = 0.25\n\n\
             [grid]\n\"model.n_embd\" = [4, 8, 16]\n\"schedule.learning_rate\" = [1e-3, 3e-3, 1e-2]\n\n\
             [search]\nmethod = \"halving\"\neta = 3\nmin_steps = {min}\nmax_steps = {}\n",
            min / 2,
            9 * min
        ),
    )
}

fn search_command(dir: &Path, runs: &str) -> Command {
    let mut command = common::command(dir);
    command.args(["sweep", "search.toml", "--runs", runs, "-j", "2"]);
    command
}

/// Each trial's steps, and the search's last lines: the rungs' scores, the winner, the compute.
fn search_outcome(dir: &Path, runs: &str, out: &std::process::Output) -> (Vec<usize>, String) {
    let text = stdout(out);
    // The account at the end (the progress lines before it start with the time).
    let from = text.find("\nrung 0:").expect("the rungs are reported");
    let steps = manifest_of(&dir.join(runs).join("h"))
        .iter()
        .map(|(_, id, _)| {
            let run = dir.join(runs).join("h").join(id);
            makemore::rundir::read_summary(&run).map_or(0, |s| s.step)
        })
        .collect();
    (steps, text[from..].to_string())
}

/// (index, id, status) of each trial of the sweep in `sweep`, from its manifest.
fn manifest_of(sweep: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(sweep.join("trials.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].into(), f[1].into(), f[2].into())
        })
        .collect()
}

/// Successive halving trains 9 trials to 20 steps, the best 3 (by validation) on to 60, the best
/// of those to 180 — a third of the grid's steps — and the winner's losses and samples are those
/// of a straight run of its configuration to 180 steps. Started again, it has nothing to do.
#[test]
fn halving_promotes_the_best_and_resumes_them_exactly() {
    let dir = tempfile::tempdir().unwrap();
    halving_search(dir.path(), 20);
    let out = output(&mut search_command(dir.path(), "runs"));
    assert!(out.status.success(), "{}", stderr(&out));
    let (steps, lines) = search_outcome(dir.path(), "runs", &out);
    let mut sorted = steps.clone();
    sorted.sort();
    assert_eq!(sorted, [20, 20, 20, 20, 20, 20, 60, 60, 180], "{lines}");
    assert!(
        lines.contains("compute: 420 training steps, against 1620"),
        "{lines}"
    );
    // The -j children are workers that take whatever the search needs, and are named so.
    let said = stdout(&out);
    assert!(
        said.contains("worker 0 finished") && !said.contains("trial 0 finished"),
        "{said}"
    );

    // The promoted trials are the best third of each rung by the validation loss.
    let sweep = dir.path().join("runs/h");
    let score = |id: &str, step: usize| -> f64 {
        let text = std::fs::read_to_string(sweep.join(id).join("metrics.csv")).unwrap();
        let rows = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect::<Vec<_>>());
        let mut val: Vec<Vec<&str>> = rows
            .filter(|r| r[1] == "val" && r[0].parse::<usize>().unwrap() <= step)
            .collect();
        // The estimate at each evaluation; a finished run's rows over every item come after it.
        val.dedup_by_key(|r| r[0]);
        val.iter()
            .map(|r| r[2].parse::<f64>().unwrap())
            .fold(f64::INFINITY, f64::min)
    };
    let ids: Vec<String> = manifest_of(&sweep)
        .into_iter()
        .map(|(_, id, _)| id)
        .collect();
    let mut rung0: Vec<(f64, usize)> = (0..9).map(|i| (score(&ids[i], 20), i)).collect();
    rung0.sort_by(|a, b| a.0.total_cmp(&b.0));
    let promoted: Vec<usize> = (0..9).filter(|&i| steps[i] >= 60).collect();
    let mut best3: Vec<usize> = rung0[..3].iter().map(|&(_, i)| i).collect();
    best3.sort();
    assert_eq!(promoted, best3);
    let winner = (0..9).find(|&i| steps[i] == 180).unwrap();
    let best = best3
        .iter()
        .min_by(|&&a, &&b| score(&ids[a], 60).total_cmp(&score(&ids[b], 60)));
    assert_eq!(Some(&winner), best);
    report_shows_the_rungs(&sweep, &ids, &steps, &|i| score(&ids[i], steps[i]));

    // The winner against a straight run of its resolved configuration.
    let trial = sweep.join(&ids[winner]);
    let straight = dir.path().join("straight");
    let config = trial.join("config.toml");
    let args = [
        "run",
        config.to_str().unwrap(),
        "--runs",
        straight.to_str().unwrap(),
    ];
    let run_out = makemore(&args, dir.path(), &[]);
    assert!(run_out.status.success(), "{}", stderr(&run_out));
    let straight = common::sole_run(&straight);
    assert_eq!(losses(&straight), losses(&trial));
    let samples = |run: &Path| std::fs::read_to_string(run.join("samples.txt")).unwrap();
    assert_eq!(samples(&straight), samples(&trial));

    let again = output(&mut search_command(dir.path(), "runs"));
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(search_outcome(dir.path(), "runs", &again), (steps, lines));
}

/// `makemore report` on the search of `halving_promotes_the_best_and_resumes_them_exactly`:
/// each trial at the rung its steps say, with the score the test computed, the finished winner
/// first and the stopped trials after it (the later rung first, then by score); the compute; the
/// rungs in the plot.
fn report_shows_the_rungs(
    sweep: &Path,
    ids: &[String],
    steps: &[usize],
    score: &dyn Fn(usize) -> f64,
) {
    let svg = sweep.with_file_name("search.svg");
    let args = [
        "report",
        sweep.to_str().unwrap(),
        "--format",
        "json",
        "--plot",
        svg.to_str().unwrap(),
    ];
    let out = makemore(&args, sweep, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rung_of = |steps: usize| [20, 60, 180].iter().position(|&s| s == steps).unwrap();
    let mut expected: Vec<(usize, usize, &str, f64)> = (0..ids.len())
        .map(|i| {
            let fate = if steps[i] == 180 { "winner" } else { "stopped" };
            (i, rung_of(steps[i]), fate, score(i))
        })
        .collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.3.total_cmp(&b.3)));
    let rows: Vec<(usize, usize, &str, f64)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let t = &row["search"];
            let number = |v: &serde_json::Value| v.as_u64().unwrap() as usize;
            (
                number(&t["trial"]),
                number(&t["rung"]),
                t["fate"].as_str().unwrap(),
                t["rung_loss"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, expected);
    let stopped = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "0 done; stopped 1");
    assert_eq!(stopped.count(), 8);
    let search = &report["searches"][0];
    assert_eq!(search["steps"], 420);
    assert_eq!(search["full_grid_steps"], 1620);
    assert_eq!(search["winner"].as_str().unwrap(), ids[expected[0].0]);
    let trials: Vec<u64> = search["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["trials"].as_u64().unwrap())
        .collect();
    assert_eq!(trials, [9, 3, 1]);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.contains("[rung 2 winner]") && svg.contains("[rung 0 stopped]"),
        "{svg}"
    );
    let table = makemore(&["report", sweep.to_str().unwrap()], sweep, &[]);
    assert!(
        stdout(&table).contains("compute: 420 training steps, against 1620"),
        "{}",
        stdout(&table)
    );
}

/// A search stopped by Ctrl-C in its first rung, then killed with kill -9 in a later one, and
/// started again, ends as the uninterrupted search: the same steps for every trial, the same
/// scores, promotions and winner.
#[test]
fn an_interrupted_search_ends_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    halving_search(dir.path(), 100);
    let whole = output(&mut search_command(dir.path(), "whole"));
    assert!(whole.status.success(), "{}", stderr(&whole));

    let sweep = dir.path().join("stopped/h");
    let started = |command: &mut Command| {
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = started(&mut search_command(dir.path(), "stopped"));
    common::wait_for("a trial to start", || {
        let claims = std::fs::read_dir(sweep.join("claims")).ok()?;
        (claims.count() > 0).then_some(())
    });
    common::signal(&child, "-INT");
    assert_eq!(child.wait().unwrap().code(), Some(130), "stopped by Ctrl-C");

    let mut child = started(&mut search_command(dir.path(), "stopped"));
    common::wait_for("a trial of rung 1 past 100 steps", || {
        let past = std::fs::read_dir(&sweep).ok()?.filter_map(|e| {
            makemore::rundir::read_summary(&e.ok()?.path())
                .ok()
                .filter(|s| s.step > 100)
        });
        (past.count() > 0).then_some(())
    });
    common::signal(&child, "-9");
    assert_eq!(child.wait().unwrap().code(), None, "killed before the end");
    // Its workers got SIGTERM as it died: they checkpoint and stop.
    std::thread::sleep(Duration::from_secs(2));

    let out = output(&mut search_command(dir.path(), "stopped"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        search_outcome(dir.path(), "stopped", &out),
        search_outcome(dir.path(), "whole", &whole)
    );
}

fn output(command: &mut Command) -> std::process::Output {
    command.output().unwrap()
}
