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
