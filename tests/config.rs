//! Configuration: strict parsing, errors that point at the source, layer order, paths.

mod common;

use common::{experiment, makemore, stderr, stdout, write};

fn check(
    dir: &std::path::Path,
    file: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut all = vec!["check", file];
    all.extend_from_slice(args);
    makemore(&all, dir, env)
}

#[test]
fn unknown_key_names_file_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "\n[schedule2]\nsteps = 3\n");
    let text = std::fs::read_to_string(dir.path().join("mlp.toml")).unwrap();
    let text = text.replace("n_embd2 = 16", "n_embd2 = 16\nn_embdd = 3");
    let line = text.lines().position(|l| l.starts_with("n_embdd")).unwrap() + 1;
    write(dir.path(), "mlp.toml", &text);
    let out = check(dir.path(), "mlp.toml", &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&format!("mlp.toml:{line}")), "{err}");
    assert!(err.contains("model.n_embdd"), "{err}");
    assert!(err.contains("no such key"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn wrong_type_names_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(dir.path(), "mlp", "");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("steps = 60", "steps = \"many\"");
    let line = text.lines().position(|l| l.starts_with("steps")).unwrap() + 1;
    write(dir.path(), "mlp.toml", &text);
    let out = check(dir.path(), "mlp.toml", &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("mlp.toml:{line}: schedule.steps")),
        "{err}"
    );
}

#[test]
fn inconsistent_values_are_rejected_with_their_source() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "transformer", "");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--set", "model.n_embd=10", "--set", "model.n_head=4"],
            "model.n_head 4 does not divide model.n_embd = 10",
        ),
        (
            &["--set", "dataset.test_fraction=1.0"],
            "dataset.test_fraction must be in [0, 1)",
        ),
        (
            &[
                "--set",
                "dataset.val_fraction=0.95",
                "--set",
                "dataset.test_fraction=0.1",
            ],
            "to leave items for training",
        ),
        (&["--set", "dataset.path=nowhere.txt"], "dataset.path"),
        (
            &["--set", "backend.name=tpu"],
            "\"tpu\" is not one of the accepted values; did you mean \"cpu\"? (they are: cpu, ndarray, cuda)",
        ),
        (
            &["--set", "schedule.batch_size=0"],
            "schedule.batch_size must be at least 1",
        ),
        (
            &["--set", "sampling.temperature=-1"],
            "sampling.temperature must be ≥ 0",
        ),
        (
            &["--set", "schedule.milestones=[5, 3]"],
            "schedule.milestones must be strictly increasing",
        ),
        (
            &["--set", "model.type=lstmm"],
            "\"lstmm\" is not one of the accepted values; did you mean \"lstm\"?",
        ),
        (
            &["--set", "model.type=cnn", "--set", "model.n_layer=0"],
            "model.n_layer must be in 1..=10",
        ),
        (&["--set", "steps"], "expected KEY=VALUE"),
    ];
    for (args, message) in cases {
        let out = check(dir.path(), "transformer.toml", args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // The message names the --set argument when that is where the value came from.
    let out = check(
        dir.path(),
        "transformer.toml",
        &["--set", "schedule.batch_size=0"],
        &[],
    );
    assert!(
        stderr(&out).contains("--set schedule.batch_size"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_inconsistent_value_in_the_file_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "transformer", "");
    let text = std::fs::read_to_string(dir.path().join("transformer.toml"))
        .unwrap()
        .replace("n_embd = 8", "n_embd = 9");
    let line = text
        .lines()
        .position(|l| l.starts_with("n_embd = 9"))
        .unwrap()
        + 1;
    let heads = text.lines().position(|l| l.starts_with("n_head")).unwrap() + 1;
    write(dir.path(), "transformer.toml", &text);
    let err = stderr(&check(dir.path(), "transformer.toml", &[], &[]));
    assert!(
        err.contains(&format!(
            "transformer.toml:{heads}: model.n_head 2 does not divide model.n_embd = 9 (each head takes an equal share of \
             the width); model.n_embd is from transformer.toml:{line}"
        )),
        "{err}"
    );
}

#[test]
fn layers_apply_in_order_file_env_set() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "");
    let resolved = |args: &[&str], env: &[(&str, &str)]| {
        let out = check(dir.path(), "mlp.toml", args, env);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let value: toml::Table = toml::from_str(&stdout(&out)).unwrap();
        value["schedule"]["steps"].as_integer().unwrap()
    };
    assert_eq!(resolved(&[], &[]), 60);
    assert_eq!(resolved(&[], &[("MAKEMORE_SCHEDULE__STEPS", "70")]), 70);
    assert_eq!(
        resolved(
            &["--set", "schedule.steps=80"],
            &[("MAKEMORE_SCHEDULE__STEPS", "70")]
        ),
        80
    );
    // Defaults fill what the file leaves out: makemore.py's.
    let out = stdout(&check(dir.path(), "mlp.toml", &[], &[]));
    let value: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(value["schedule"]["weight_decay"].as_float(), Some(0.01));
    assert_eq!(value["schedule"]["betas"].as_array().unwrap().len(), 2);
    assert_eq!(value["name"].as_str(), Some("mlp"));
    let bad_env = check(
        dir.path(),
        "mlp.toml",
        &[],
        &[("MAKEMORE_SCHEDULE__BATCH_SIZE", "0")],
    );
    assert!(
        stderr(&bad_env).contains("MAKEMORE_SCHEDULE__BATCH_SIZE"),
        "{}",
        stderr(&bad_env)
    );
}

#[test]
fn relative_paths_resolve_against_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("experiments");
    std::fs::create_dir(&sub).unwrap();
    experiment(&sub, "mlp", "");
    // Run from the parent: the data path in the file is relative to experiments/.
    let out = check(dir.path(), "experiments/mlp.toml", &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let value: toml::Table = toml::from_str(&stdout(&out)).unwrap();
    let path = value["dataset"]["path"].as_str().unwrap();
    assert_eq!(
        std::path::Path::new(path),
        sub.join("names.txt").canonicalize().unwrap()
    );
    // A --set path is relative to the working directory.
    let out = check(
        dir.path(),
        "experiments/mlp.toml",
        &["--set", "dataset.path=experiments/names.txt"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_missing_experiment_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(dir.path(), "nope.toml", &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope.toml"));
}

/// Every shipped experiment resolves (`makemore check`) and every shipped sweep plans its trials
/// (`sweep --dry-run`), as cloned. Files that train on makemore's names.txt read it from
/// `../shared` beside the repository (as CI has it): without it they are skipped, except under
/// `CI=true`.
#[test]
fn every_shipped_experiment_and_sweep_resolves() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/data/names.txt").exists();
    assert!(
        shared || std::env::var("CI").is_err(),
        "CI=true needs ../shared/data/names.txt"
    );
    let mut files: Vec<_> = std::fs::read_dir(root.join("experiments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let runs = tempfile::tempdir().unwrap();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        if text.contains("../shared/") && !shared {
            eprintln!("skipped {} (no ../shared)", file.display());
            continue;
        }
        let path = file.to_str().unwrap();
        // A sweep file names the experiment its trials start from.
        let out = match text.lines().any(|l| l.starts_with("experiment =")) {
            true => {
                let runs = runs.path().to_str().unwrap();
                makemore(&["sweep", path, "--dry-run", "--runs", runs], root, &[])
            }
            false => makemore(&["check", path], root, &[]),
        };
        assert!(out.status.success(), "{path}: {}", stderr(&out));
    }
}
