//! `makemore bench` runs and writes well-formed figures (no timing is asserted).

mod common;

use common::{makemore, stderr};

#[test]
fn bench_writes_figures_for_each_family_as_json() {
    let dir = tempfile::tempdir().unwrap();
    common::names_file(dir.path());
    let args = [
        "bench",
        "--models",
        "bigram,cnn,transformer",
        "--data",
        "names.txt",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--samples",
        "4",
        "--threads",
        "1",
        "--json",
        "bench.json",
        "--set",
        "model.n_embd=8",
        "--set",
        "model.n_layer=2",
        "--set",
        "model.n_head=2",
        "--set",
        "dataset.test_size=4",
    ];
    let out = makemore(&args, dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("transformer"), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("bench.json")).unwrap())
            .unwrap();
    assert_eq!(report["threads"], 1);
    let figures = report["figures"].as_array().unwrap();
    let models: Vec<&str> = figures
        .iter()
        .map(|f| f["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["bigram", "cnn", "transformer"]);
    for f in figures {
        assert_eq!(f["steps"], 3, "{f}");
        for key in [
            "params",
            "ms_per_step_median",
            "ms_per_step_p10",
            "ms_per_step_p90",
            "train_tokens_per_s",
            "eval_tokens_per_s",
            "sample_items_per_s",
            "sample_chars_per_s",
            "generation_s",
        ] {
            assert!(f[key].as_f64().unwrap() > 0.0, "{key}: {f}");
        }
        assert!(
            f["ms_per_step_p10"].as_f64() <= f["ms_per_step_p90"].as_f64(),
            "{f}"
        );
    }
}

#[test]
fn bench_rejects_an_unknown_family_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    common::names_file(dir.path());
    let args = ["bench", "--models", "bigram,lstmm", "--data", "names.txt"];
    let out = makemore(&args, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("lstmm"), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "nothing was measured");
}

/// tests/gpu.sh, the script a GPU machine runs, on the CPU with few steps: its arguments, its
/// JSON and its table. (Its GPU half needs a GPU.)
#[test]
fn the_gpu_script_runs_its_cpu_half() {
    let script = |args: &[&str]| {
        let mut command = std::process::Command::new("bash");
        command
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gpu.sh"))
            .args(["--binary", env!("CARGO_BIN_EXE_makemore")])
            .args(args);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("MAKEMORE_") || key.starts_with("SLURM_") {
                command.env_remove(key);
            }
        }
        command.output().unwrap()
    };
    for bad in [
        &["--backend", "tpu"][..],
        &["--frobnicate"],
        &["--out"],
        &["--budget", "x"],
    ] {
        assert_eq!(script(bad).status.code(), Some(2), "{bad:?}");
    }
    // A spent budget skips every command and still writes both files.
    let spent = tempfile::tempdir().unwrap();
    let args = ["--backend", "cpu", "--quick", "--budget", "0", "--out"];
    let out = script(&[&args[..], &[spent.path().to_str().unwrap()]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(spent.path().join("gpu.json")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(json["compile"]["first_rc"], 125, "{text}");
    assert_eq!(
        json["families"][0]["device_test_loss"],
        serde_json::Value::Null
    );
    assert!(spent.path().join("gpu.md").exists());
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    let out = script(&[
        "--backend",
        "cpu",
        "--quick",
        "--budget",
        "600",
        "--out",
        out_dir,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let text = std::fs::read_to_string(dir.path().join("gpu.json")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(json["compile"]["first_rc"], 0, "{text}");
    let families = json["families"].as_array().unwrap();
    assert_eq!(families.len(), 9);
    for family in families {
        // The same backend twice: the comparison must find no difference.
        assert_eq!(family["device_rc"], 0, "{family}");
        assert_eq!(family["max_difference"], 0, "{family}");
        assert!(family["device_test_loss"].as_f64().is_some(), "{family}");
        assert_eq!(family["device_test_loss"], family["cpu_test_loss"]);
    }
    assert_eq!(json["transformer"]["rc"], 0);
    assert_eq!(json["transformer"]["sampled_on_cpu_rc"], 0);
    assert!(json["transformer"]["test_loss"].as_f64().is_some());
    let bench = json["bench"].as_array().unwrap();
    let labels: Vec<&str> = bench.iter().map(|b| b["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["batch-32", "batch-256", "wide"]);
    let figures = &bench[1]["report"]["figures"];
    assert_eq!(figures[0]["batch_size"], 256, "{}", bench[1]);
    let table = std::fs::read_to_string(dir.path().join("gpu.md")).unwrap();
    assert!(table.contains("| transformer | "), "{table}");
    assert!(
        table.contains("| 256 | transformer (batch-256) |"),
        "{table}"
    );
}
