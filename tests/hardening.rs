//! Bad input of every kind gets a clear message and exit code 2, never a panic, and leaves
//! nothing behind where it should not.

mod common;

use std::path::Path;
use std::process::Child;

use common::{experiment, makemore, only_run, stderr, write};

fn code(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let out = makemore(args, dir, &[]);
    (out.status.code(), stderr(&out))
}

fn trained(dir: &Path, model: &str) -> std::path::PathBuf {
    experiment(dir, model, "");
    let (status, err) = code(&["run", &format!("{model}.toml"), "--runs", "runs"], dir);
    assert_eq!(status, Some(0), "{err}");
    only_run(&dir.join("runs"), model)
}

#[test]
fn a_checkpoint_of_another_model_or_an_edited_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mlp, bigram) = (trained(dir.path(), "mlp"), trained(dir.path(), "bigram"));
    for which in ["best", "last"] {
        let file = format!("checkpoints/{which}.ckpt");
        std::fs::copy(mlp.join(&file), bigram.join(&file)).unwrap();
    }
    let run = bigram.to_str().unwrap();
    let commands: [&[&str]; 4] = [
        &["sample", run, "-n", "2"],
        &["score", run, "emma"],
        &["export", run, "--safetensors", "out.safetensors"],
        &["run", "--resume", run, "--set", "schedule.steps=80"],
    ];
    for args in commands {
        let (status, err) = code(args, dir.path());
        assert_eq!(status, Some(2), "{args:?}: {err}");
        assert!(err.contains("another model family"), "{args:?}: {err}");
    }

    // The mlp's configuration edited after training: the shapes no longer match.
    let config = mlp.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("n_embd = 8\n", "n_embd = 16\n")).unwrap();
    let (status, err) = code(&["sample", mlp.to_str().unwrap()], dir.path());
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("parameter shapes"), "{err}");
}

#[test]
fn score_names_the_line_of_standard_input_that_is_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "bigram");
    let mut score = common::command(dir.path());
    score.args(["score", run.to_str().unwrap()]);
    let out = common::output_with_input(&mut score, b"emma\n\xffbad\nava\n");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("standard input:2: not valid UTF-8"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn names_must_stay_one_directory_below_runs() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    for name in ["../escaped", "", "a/b", ".."] {
        let set = format!("name={name}");
        let args = ["run", "bigram.toml", "--runs", "runs", "--set", &set];
        let (status, err) = code(&args, dir.path());
        assert_eq!(status, Some(2), "{name:?}: {err}");
        assert!(err.contains("name"), "{err}");
    }
    assert!(!dir.path().join("escaped").exists());
    assert!(!dir.path().join("runs").exists());

    write(
        dir.path(),
        "grid.toml",
        "name = \"../up\"\nexperiment = \"bigram.toml\"\n[grid]\nseed = [1, 2]\n",
    );
    let (status, err) = code(&["sweep", "grid.toml", "--runs", "runs"], dir.path());
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("grid.toml:1: name"), "{err}");
}

#[test]
fn sweep_arguments_are_checked_before_its_directory_exists() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    write(
        dir.path(),
        "grid.toml",
        "name = \"g\"\nexperiment = \"bigram.toml\"\n[grid]\nseed = [1, 2]\n",
    );
    let (status, err) = code(&["sweep", "grid.toml", "--index", "99"], dir.path());
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("has 2 trials"), "{err}");
    let out = makemore(
        &["sweep", "grid.toml"],
        dir.path(),
        &[("SLURM_ARRAY_TASK_ID", "abc")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let (status, err) = code(&["sweep", "grid.toml", "-j", "0"], dir.path());
    assert_eq!(status, Some(2), "{err}");
    assert!(!dir.path().join("runs").exists(), "nothing was created");
}

#[test]
fn an_infinite_learning_rate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    for lr in ["inf", "nan", "0", "-1"] {
        let set = format!("schedule.learning_rate={lr}");
        let (status, err) = code(&["check", "bigram.toml", "--set", &set], dir.path());
        assert_eq!(status, Some(2), "{lr}: {err}");
        assert!(err.contains("schedule.learning_rate"), "{err}");
    }
}

/// `makemore run bigram.toml` for `steps` steps, started and left running.
fn bigram_in_background(dir: &Path, steps: usize, stdout: std::process::Stdio) -> Child {
    let steps = format!("schedule.steps={steps}");
    common::command(dir)
        .args(["run", "bigram.toml", "--runs", "runs", "--set", &steps])
        .stdout(stdout)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_closed_stdout_does_not_stop_a_run() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    // `makemore run … | head -1`: the reader goes away after the first line.
    let mut child = bigram_in_background(dir.path(), 3000, std::process::Stdio::piped());
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("bigram:"), "{first}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let run = only_run(&dir.path().join("runs"), "bigram");
    let summary = makemore::rundir::read_summary(&run).unwrap();
    assert_eq!(summary.status, makemore::rundir::Status::Done);
    assert_eq!(summary.step, 3000);
}

#[test]
fn a_changed_data_file_is_refused_by_every_command_that_reads_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "bigram");
    let names = dir.path().join("names.txt");
    let text = std::fs::read_to_string(&names).unwrap();
    std::fs::write(&names, text.replace("emma\n", "emmy\n")).unwrap();
    let run = run.to_str().unwrap();
    let commands: [&[&str]; 4] = [
        &["sample", run],
        &["score", run, "ava"],
        &["export", run, "--safetensors", "x.safetensors"],
        // Finished, nothing to train: the data is checked all the same.
        &["run", "--resume", run],
    ];
    for args in commands {
        let (status, err) = code(args, dir.path());
        assert_eq!(status, Some(2), "{args:?}: {err}");
        assert!(err.contains("changed"), "{args:?}: {err}");
    }
}

#[test]
fn extending_a_finished_run_keeps_the_best_checkpoint_by_its_estimates() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "mlp");
    let args = [
        "run",
        "--resume",
        run.to_str().unwrap(),
        "--set",
        "schedule.steps=140",
    ];
    let (status, err) = code(&args, dir.path());
    assert_eq!(status, Some(0), "{err}");
    // Every test row but the last (the last model over every item) is an estimate; with 4 test
    // items and 8 per estimate, each is exact. The selected step is their minimum's.
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let estimates: Vec<(usize, f64)> = text
        .lines()
        .filter(|l| l.contains(",test,"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    let steps: Vec<usize> = estimates.iter().map(|e| e.0).collect();
    assert_eq!(steps, [20, 40, 60, 80, 100, 120, 140, 140], "{text}");
    let best = estimates[..estimates.len() - 1]
        .iter()
        .fold((0, f64::INFINITY), |b, e| if e.1 < b.1 { *e } else { b });
    let summary = makemore::rundir::read_summary(&run).unwrap();
    assert_eq!(summary.selected_step, Some(best.0));
    let checkpoint =
        makemore::checkpoint::Checkpoint::read(&run.join("checkpoints/best.ckpt")).unwrap();
    assert_eq!(checkpoint.step, best.0);
}

#[test]
fn messages_name_what_the_user_typed_in_the_users_words() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    let says = |args: &[&str], expected: &[&str]| {
        let (status, err) = code(args, dir.path());
        assert_eq!(status, Some(2), "{args:?}: {err}");
        for part in expected {
            assert!(err.contains(part), "{args:?}: {err} lacks {part:?}");
        }
        for internal in [
            "expected struct",
            "expected enum",
            ": :",
            "built-in default",
        ] {
            assert!(!err.contains(internal), "{args:?}: {err}");
        }
    };
    says(
        &["check", "bigram.toml", "--set", "foo.bar=1"],
        &["--set foo.bar"],
    );
    write(
        dir.path(),
        "typo.toml",
        "experiment = \"bigram.toml\"\n[grid]\n\"modle.n_embd\" = [1, 2]\n",
    );
    says(
        &["sweep", "typo.toml", "--dry-run"],
        &["typo.toml:3", "modle"],
    );
    write(dir.path(), "bare.toml", "[grid]\nseed = [1]\n");
    says(
        &["sweep", "bare.toml", "--dry-run"],
        &["bare.toml", "experiment ="],
    );
    write(dir.path(), "broken.toml", "[dataset\n");
    says(
        &["check", "broken.toml"],
        &["broken.toml:1:9: invalid table header"],
    );
    write(dir.path(), "int.toml", "[model]\ntype = 3\n");
    says(&["check", "int.toml"], &["int.toml:2: model.type"]);
    says(
        &["import", "x.pt", "--type", "gpt", "--data", "names.txt"],
        &["--type: model.type"],
    );
    says(
        &["import", "x.pt", "--type", "mlp", "--data", "missing.txt"],
        &["--data: dataset.path"],
    );
    says(&["bench", "--models", "gpt"], &["--models: model.type"]);
    says(
        &["bench", "--data", "missing.txt"],
        &["--data: dataset.path"],
    );

    let run = trained(dir.path(), "bigram");
    std::fs::write(run.join("checkpoints/best.ckpt"), [10u8]).unwrap();
    says(
        &["sample", run.to_str().unwrap()],
        &["best.ckpt is not a valid checkpoint"],
    );
}

#[test]
fn a_run_that_is_going_cannot_be_resumed_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    let mut child = bigram_in_background(dir.path(), 1_000_000, std::process::Stdio::null());
    let started = std::time::Instant::now();
    let run = loop {
        let runs = common::run_dirs(&dir.path().join("runs/bigram"));
        if let Some(run) = runs.first()
            && run.join("summary.json").exists()
        {
            break run.clone();
        }
        assert!(started.elapsed().as_secs() < 60, "the run never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let (status, err) = code(&["run", "--resume", run.to_str().unwrap()], dir.path());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("another makemore process"), "{err}");
}

#[test]
fn a_closed_stdout_does_not_stop_a_sweep() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    write(
        dir.path(),
        "grid.toml",
        "name = \"g\"\nexperiment = \"bigram.toml\"\n[set]\n\"schedule.steps\" = 300\n[grid]\nseed = [1, 2, 3]\n",
    );
    // `makemore sweep grid.toml | head -1`.
    let mut child = common::command(dir.path())
        .args(["sweep", "grid.toml", "-j", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("g: 3 trials"), "{first}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let manifest = std::fs::read_to_string(dir.path().join("runs/g/trials.csv")).unwrap();
    assert_eq!(manifest.matches(",done,").count(), 3, "{manifest}");
}

#[test]
fn one_very_long_item_is_warned_of_and_max_len_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    let mut items: Vec<String> = common::NAMES.iter().map(|n| n.to_string()).collect();
    items.push("a".repeat(5000));
    write(dir.path(), "names.txt", &(items.join("\n") + "\n"));
    let run = |sets: &[&str]| {
        let mut args = vec![
            "run",
            "bigram.toml",
            "--runs",
            "runs",
            "--set",
            "schedule.steps=2",
        ];
        for set in sets {
            args.extend(["--set", set]);
        }
        let out = makemore(&args, dir.path(), &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        common::stdout(&out)
    };
    let printed = run(&[]);
    assert!(
        printed.contains("the longest item has 5000 characters where 99% have at most 9"),
        "{printed}"
    );
    let printed = run(&["dataset.max_len=20"]);
    assert!(
        printed.contains("dropped 1 items longer than 20"),
        "{printed}"
    );
    assert!(!printed.contains("the longest item"), "{printed}");
    let printed = run(&["dataset.max_len=20", "dataset.long_items=\"truncate\""]);
    assert!(
        printed.contains("cut 1 items longer than 20 characters to their first 20"),
        "{printed}"
    );
    // The run's config.toml keeps the choice (config.toml of the three runs, in any order).
    let configs: String = common::run_dirs(&dir.path().join("runs/bigram"))
        .iter()
        .map(|run| std::fs::read_to_string(run.join("config.toml")).unwrap())
        .collect();
    assert_eq!(configs.matches("long_items = \"truncate\"").count(), 1);
}

/// The memory estimate's parameter counts against the models' own, for every family at
/// makemore.py's sizes and at small ones: the estimate leaves out biases and norms only.
#[test]
fn the_parameter_estimate_matches_the_models() {
    use makemore::config::{Experiment, ModelType};
    use makemore::models::{Model, memory};
    let dir = tempfile::tempdir().unwrap();
    let mut dataset = Experiment::defaults("t").dataset;
    dataset.path = common::names_file(dir.path());
    dataset.test_size = 4;
    let data = makemore::data::Dataset::load(&dataset).unwrap();
    let kinds = [
        ModelType::Bigram,
        ModelType::Mlp,
        ModelType::Cnn,
        ModelType::Rnn,
        ModelType::Gru,
        ModelType::Lstm,
        ModelType::Bow,
        ModelType::Transformer,
    ];
    for (n_embd, n_embd2) in [(64, 64), (24, 128), (8, 16)] {
        for kind in kinds {
            let mut model = Experiment::defaults("t").model;
            (model.kind, model.n_embd, model.n_embd2) = (kind, n_embd, n_embd2);
            if kind == ModelType::Cnn {
                model.n_layer = 3;
            }
            let built = Model::<burn::backend::Flex>::new(&model, &data, 1, &Default::default())
                .parameters() as f64;
            let estimate = memory::parameters(&model, data.vocab.size(), data.seq_len) as f64;
            let ratio = estimate / built;
            assert!(
                (0.85..=1.0).contains(&ratio),
                "{kind:?} {n_embd}/{n_embd2}: {estimate} vs {built}"
            );
        }
    }
}

#[test]
fn sizes_that_cannot_fit_are_refused_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "transformer", "");
    for set in [
        "model.n_embd=1000000000",
        "schedule.batch_size=1000000000",
        "model.n_embd2=1000000000",
    ] {
        let family = if set.contains("n_embd2") {
            "model.type=mlp"
        } else {
            "model.type=transformer"
        };
        let args = [
            "run",
            "transformer.toml",
            "--runs",
            "runs",
            "--set",
            set,
            "--set",
            family,
        ];
        let (status, err) = code(&args, dir.path());
        assert_eq!(status, Some(2), "{set}: {err}");
        assert!(
            err.contains("needs about") && err.contains("lower model.n_embd"),
            "{err}"
        );
    }
    assert!(!dir.path().join("runs").exists());
    let out = makemore(&["check", "transformer.toml"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        common::stdout(&out).contains("# needs about"),
        "{}",
        common::stdout(&out)
    );
}
