//! Choosing the backend: what a build without CUDA says, what a CUDA build says on a machine
//! without a GPU, and checkpoints that move between backends.

mod common;

use common::{experiment, losses, makemore, only_run, stderr};

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_in_a_cpu_only_build_says_how_to_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "\n[backend]\nname = \"cuda\"\n");
    for command in ["check", "run"] {
        let out = makemore(&[command, "mlp.toml"], dir.path(), &[]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let err = stderr(&out);
        assert!(err.contains("mlp.toml:"), "{err}");
        assert!(err.contains("backend.name"), "{err}");
        assert!(err.contains("--features cuda"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(
        !dir.path().join("runs").exists(),
        "nothing may be left behind"
    );
}

/// CI has no GPU, so there this checks the plain error; on a machine with one, that it runs.
#[cfg(feature = "cuda")]
#[test]
fn cuda_without_a_driver_or_device_is_a_plain_error() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "\n[backend]\nname = \"cuda\"\n");
    for command in ["check", "run"] {
        let out = makemore(&[command, "mlp.toml"], dir.path(), &[]);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{err}");
        match out.status.code() {
            Some(0) => {}
            Some(2) => {
                assert!(err.starts_with("error: backend"), "{err}");
                assert!(err.contains("set backend.name = \"cpu\""), "{err}");
                assert!(
                    !dir.path().join("runs").exists(),
                    "nothing may be left behind"
                );
            }
            code => panic!("{command} exited with {code:?}: {err}"),
        }
    }
}

/// A run may resume on another backend (its checkpoints hold plain f32 values); here the
/// change that every build can make: the CPU's thread count.
#[test]
fn a_run_resumes_with_other_backend_settings() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "\n[backend]\nthreads = 1\n");
    let out = makemore(&["run", "mlp.toml"], dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = only_run(&dir.path().join("runs"), "mlp");
    let run = run.to_str().unwrap();
    let args = [
        "run",
        "--resume",
        run,
        "--set",
        "schedule.steps=80",
        "--set",
        "backend.threads=2",
    ];
    let out = makemore(&args, dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = makemore(
        &["run", "--resume", run, "--set", "seed=8"],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("schedule.steps, backend.*"));
}

/// The Transformer splits each batch in two parts, on two threads where it has them: the
/// numbers, dropout included, must be those of one thread, bit for bit.
#[test]
fn the_thread_count_does_not_change_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "transformer", "");
    let run = |threads: &str| {
        let runs = format!("runs-{threads}");
        let threads = format!("backend.threads={threads}");
        let args = [
            "run",
            "transformer.toml",
            "--runs",
            &runs,
            "--set",
            &threads,
            "--set",
            "model.dropout=0.1",
        ];
        let out = makemore(&args, dir.path(), &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let run = only_run(&dir.path().join(&runs), "transformer");
        let samples = std::fs::read_to_string(run.join("samples.txt")).unwrap();
        (losses(&run), samples)
    };
    let (one, two) = (run("1"), run("2"));
    assert!(one.0.lines().count() > 5, "{}", one.0);
    assert_eq!(one, two);
}
