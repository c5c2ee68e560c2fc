//! `makemore report` on hand-written run directories with chosen numbers: the expected means,
//! confidence intervals and Welch tests are worked out here from first principles (t quantiles
//! from printed tables, tail probabilities by integrating the t density), never taken from the
//! program's output.

mod common;

use std::path::{Path, PathBuf};

use common::{makemore, stderr, stdout};
use serde_json::{Value, json};

/// A resolved experiment as a run directory keeps it; `{lr}`, `{seed}` and `{name}` vary.
const CONFIG: &str = r#"name = "{name}"
seed = {seed}

[dataset]
path = "names.txt"
test_size = 1000
test_fraction = 0.1
val_fraction = 0.1
split_seed = 42
dedup = false

[model]
type = "rnn"
n_layer = 4
n_head = 4
n_embd = 64
n_embd2 = 64
block_size = 0
blank_token = true
smoothing = 1.0
dropout = 0.0

[backend]
name = "cpu"
device = 0
threads = 0

[schedule]
steps = 3000
batch_size = 32
optimizer = "adamw"
learning_rate = {lr}
weight_decay = 0.01
betas = [0.9, 0.99]
eps = 0.00000001
momentum = 0.0
lr_schedule = "constant"
warmup_steps = 0
min_lr = 0.0
milestones = []
gamma = 0.1
eval_every = 500
eval_batches = 10
eval_batch_size = 100
sample_every = 200
early_stop_patience = 0

[sampling]
count = 10
temperature = 1.0
top_k = 0
"#;

/// One run directory: its config, a summary (`fields` over a finished run's defaults) and a
/// metrics.csv with a val curve that ends at the summary's val loss.
struct Fixture {
    name: &'static str,
    dir: &'static str,
    seed: u64,
    lr: &'static str,
    fields: Value,
}

fn write_run(runs: &Path, run: &Fixture) -> PathBuf {
    let dir = runs.join(run.name).join(run.dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = CONFIG
        .replace("{name}", run.name)
        .replace("{seed}", &run.seed.to_string())
        .replace("{lr}", run.lr);
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let mut summary = json!({
        "status": "done", "name": run.name, "model_type": "rnn", "params": 11803,
        "step": 3000, "steps": 3000, "selected_on": "val", "selected_step": 2500,
        "best_estimate": null, "val_loss": null, "test_loss": null, "test_loss_se": null,
        "test_loss_last": null, "final_train_loss": 2.0, "final_val_loss": null,
        "overlap": {"val_items": 3203, "val_in_train": 0, "test_items": 1000, "test_in_train": 0},
        "ms_per_step": 1.0, "tokens_per_s": 50000.0, "wall_s": 60.0, "backend": "cpu (burn flex)",
        "version": "0.1.0", "config_hash": format!("{}-{}", run.lr, run.seed),
        "data_hash": "d1", "split_hash": "s1", "started_at": "2026-11-01T10:00:00+00:00",
        "updated_at": "2026-11-01T10:01:00+00:00", "error": null
    });
    for (key, value) in run.fields.as_object().unwrap() {
        summary[key] = value.clone();
    }
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
    let val = summary["val_loss"].as_f64().unwrap_or(3.0);
    let metrics = format!(
        "step,split,loss,lr,elapsed_s,tokens_per_s\n500,val,{},0.01,1,1\n3000,val,{val},0.01,2,1\n",
        val + 0.5
    );
    std::fs::write(dir.join("metrics.csv"), metrics).unwrap();
    dir
}

fn done(val: f64, test: f64) -> Value {
    json!({"val_loss": val, "test_loss": test, "test_loss_last": test + 0.01,
           "best_estimate": val - 0.001})
}

/// A sweep of three learning rates: 0.01 (3 seeds, one interrupted, one older repeat of seed 1),
/// 0.003 (3 seeds, one failed), 0.001 (2 seeds); then a run on another split selected on test
/// with overlapping items, and a run directory from before selection on val existed.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let sweep = |dir, seed, lr, fields| Fixture {
        name: "sweep",
        dir,
        seed,
        lr,
        fields,
    };
    let fixtures = [
        sweep("a1", 1, "0.01", done(2.10, 2.15)),
        sweep("a2", 2, "0.01", done(2.12, 2.16)),
        sweep("a3", 3, "0.01", done(2.14, 2.20)),
        // An older run of the same configuration and seed: replaced by a1, never averaged.
        sweep("a1-old", 1, "0.01", {
            let mut v = done(9.0, 9.0);
            v["started_at"] = "2026-10-01T10:00:00+00:00".into();
            v
        }),
        sweep(
            "a4",
            4,
            "0.01",
            json!({"status": "interrupted", "step": 1200}),
        ),
        sweep("b1", 1, "0.003", done(2.13, 2.18)),
        sweep("b2", 2, "0.003", done(2.15, 2.17)),
        sweep("b3", 3, "0.003", done(2.17, 2.22)),
        sweep(
            "b4",
            4,
            "0.003",
            json!({"status": "failed", "step": 10, "error": "boom"}),
        ),
        sweep("c1", 1, "0.001", done(2.40, 2.45)),
        sweep("c2", 2, "0.001", done(2.41, 2.46)),
        Fixture {
            name: "on-test",
            dir: "t1",
            seed: 1,
            lr: "0.01",
            fields: json!({"selected_on": "test", "split_hash": "s2", "val_loss": null,
                "test_loss": 1.9734, "test_loss_se": 0.0125, "test_loss_last": 1.98,
                "generation": generated(0.8, 0.7, 0.25, 0.123),
                "overlap": {"val_items": 0, "val_in_train": 0, "test_items": 1000,
                            "test_in_train": 153}}),
        },
        Fixture {
            name: "old",
            dir: "o1",
            seed: 1,
            lr: "0.01",
            fields: json!({"split_hash": "s3"}),
        },
    ];
    for run in &fixtures {
        write_run(&runs, run);
    }
    // An older summary.json: best_test_loss and final_test_loss, none of the new keys.
    let old = runs.join("old/o1/summary.json");
    let mut summary: Value = serde_json::from_str(&std::fs::read_to_string(&old).unwrap()).unwrap();
    let map = summary.as_object_mut().unwrap();
    for key in [
        "selected_on",
        "selected_step",
        "best_estimate",
        "val_loss",
        "test_loss",
        "test_loss_se",
        "test_loss_last",
        "overlap",
    ] {
        map.remove(key);
    }
    map.insert("best_test_loss".into(), 2.05.into());
    map.insert("final_test_loss".into(), 2.07.into());
    std::fs::write(&old, summary.to_string()).unwrap();
    let damaged = runs.join("damaged/20260101-000000-abcdef");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::write(damaged.join("summary.json"), "{ not json").unwrap();
    (dir, runs)
}

fn report(dir: &Path, runs: &Path, args: &[&str]) -> String {
    let mut all = vec!["report", runs.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = makemore(&all, dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out).replace(runs.to_str().unwrap(), "<runs>")
}

/// Compares each output with tests/golden/NAME. `UPDATE_GOLDEN=1` writes the files and fails,
/// so that an update is always looked at and never passes as a comparison of a file with itself.
fn golden(outputs: &[(&str, String)]) {
    // Numbers beyond 6 decimals are compared rounded: a quantile or tail probability may differ
    // in its last bits with another CPU's or system's maths library.
    let long = regex::Regex::new(r"\d+\.\d{7,}").unwrap();
    let rounded = |text: &str| {
        long.replace_all(text, |c: &regex::Captures| {
            format!("{:.6}", c[0].parse::<f64>().unwrap())
        })
        .into_owned()
    };
    let outputs: Vec<(&str, String)> = outputs.iter().map(|(n, t)| (*n, rounded(t))).collect();
    let path = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name)
    };
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        for (name, actual) in &outputs {
            std::fs::write(path(name), actual).unwrap();
        }
        panic!(
            "golden files written: check them by hand, then run the tests without UPDATE_GOLDEN"
        );
    }
    for (name, actual) in &outputs {
        let expected = std::fs::read_to_string(path(name)).unwrap_or_default();
        assert_eq!(
            actual, &expected,
            "{name} differs from the golden file (UPDATE_GOLDEN=1 rewrites it)"
        );
    }
}

#[test]
fn every_format_matches_its_golden_output() {
    let (dir, runs) = fixture();
    let format = |f: &str| report(dir.path(), &runs, &["--format", f]);
    golden(&[
        ("report.table", report(dir.path(), &runs, &[])),
        ("report.md", format("md")),
        ("report.csv", format("csv")),
        ("report.json", format("json")),
    ]);
}

/// Student t quantiles t(0.975, df), from a printed table (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2).
fn t975(df: usize) -> f64 {
    match df {
        1 => 12.706204736174698,
        2 => 4.302652729911275,
        _ => panic!("no table entry for {df}"),
    }
}

/// Two-sided tail probability of Student's t with `df` (not necessarily whole) degrees of
/// freedom beyond |t|: the density integrated by Simpson's rule on [0, |t|], its normalising
/// constant from the integral over [0, ∞) taken the same way after x = tan θ.
fn two_sided_p(t: f64, df: f64) -> f64 {
    let density = |x: f64| (1.0 + x * x / df).powf(-(df + 1.0) / 2.0);
    let simpson = |f: &dyn Fn(f64) -> f64, a: f64, b: f64| {
        let n = 200_000;
        let h = (b - a) / n as f64;
        let inner: f64 = (1..n)
            .map(|i| f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 })
            .sum();
        (f(a) + f(b) + inner) * h / 3.0
    };
    let half_pi = std::f64::consts::FRAC_PI_2;
    let whole = simpson(
        &|theta: f64| density(theta.tan()) / theta.cos().powi(2),
        0.0,
        half_pi - 1e-9,
    );
    1.0 - simpson(&density, 0.0, t.abs()) / whole
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Welch's t and its degrees of freedom, as in the textbooks.
fn welch(a: &[f64], b: &[f64]) -> (f64, f64) {
    let ((ma, sa), (mb, sb)) = (mean_std(a), mean_std(b));
    let (va, vb) = (sa * sa / a.len() as f64, sb * sb / b.len() as f64);
    let t = (ma - mb) / (va + vb).sqrt();
    let df = (va + vb).powi(2) / (va * va / (a.len() - 1) as f64 + vb * vb / (b.len() - 1) as f64);
    (t, df)
}

fn rows(json: &Value) -> Vec<Value> {
    json["rows"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], lr: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["keys"]["schedule.learning_rate"] == lr)
        .unwrap_or_else(|| panic!("no row for {lr}"))
}

fn close(actual: &Value, expected: f64, tolerance: f64) {
    let actual = actual.as_f64().unwrap_or(f64::NAN);
    assert!(
        (actual - expected).abs() < tolerance,
        "{actual} vs {expected}"
    );
}

#[test]
fn figures_over_seeds_come_from_finished_runs_counted_once() {
    let (dir, runs) = fixture();
    let json: Value =
        serde_json::from_str(&report(dir.path(), &runs, &["--format", "json"])).unwrap();
    let rows = rows(&json);
    let sweep: Vec<&Value> = rows.iter().filter(|r| r["group"] == 1).collect();
    // Ranked by val: 0.01 (2.12), 0.003 (2.15), 0.001 (2.405).
    let order: Vec<&str> = sweep
        .iter()
        .map(|r| r["keys"]["schedule.learning_rate"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["0.01", "0.003", "0.001"]);

    let a = row(&rows, "0.01");
    // The older repeat of seed 1 (9.0) and the interrupted run are not averaged.
    assert_eq!(a["runs"].as_array().unwrap().len(), 3);
    assert_eq!(a["repeats"].as_array().unwrap().len(), 1);
    assert_eq!(a["not_done"], json!({"interrupted": 1}));
    assert_eq!(a["status"], "3 done; interrupted 1; 1 repeat");
    close(&a["selection_loss"]["mean"], 2.12, 1e-12);
    close(&a["selection_loss"]["std"], 0.02, 1e-12);
    // statrs's quantiles agree with the tables to about 1e-11.
    close(
        &a["selection_loss"]["ci95"],
        t975(2) * 0.02 / 3f64.sqrt(),
        1e-9,
    );
    close(&a["test_loss"]["mean"], 2.17, 1e-12);
    close(&a["test_loss"]["std"], (7e-4f64).sqrt(), 1e-12);
    close(
        &a["test_loss"]["ci95"],
        t975(2) * (7e-4f64 / 3.0).sqrt(),
        1e-9,
    );
    close(&a["test_logprob"], -2.17, 1e-12);

    let b = row(&rows, "0.003");
    assert_eq!(b["status"], "3 done; failed 1");
    assert_eq!(b["steps"], 3000, "the failed run's steps are not counted");
    let (t, df) = welch(&[2.13, 2.15, 2.17], &[2.10, 2.12, 2.14]);
    close(&Value::from(df), 4.0, 1e-12);
    close(&b["p_vs_top"], two_sided_p(t, df), 1e-6);
    // t = 0.03 / sqrt(2 × 0.0004 / 3) = 1.837 on 4 degrees of freedom: p ≈ 0.14, a tie.
    assert_eq!(b["tied_with_top"], true);

    let c = row(&rows, "0.001");
    let (t, df) = welch(&[2.40, 2.41], &[2.10, 2.12, 2.14]);
    close(&c["p_vs_top"], two_sided_p(t, df), 1e-6);
    assert_eq!(c["tied_with_top"], false);
    close(
        &c["selection_loss"]["ci95"],
        t975(1) * (0.01f64 / 2f64.sqrt()) / 2f64.sqrt(),
        1e-9,
    );
    assert!(
        a["p_vs_top"].is_null(),
        "the top row is not compared with itself"
    );
}

#[test]
fn single_runs_selection_on_test_overlap_and_old_runs_are_said() {
    let (dir, runs) = fixture();
    let json: Value =
        serde_json::from_str(&report(dir.path(), &runs, &["--format", "json"])).unwrap();
    let rows = rows(&json);
    let groups = json["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3, "three splits");
    let on_test = rows.iter().find(|r| r["group"] == 2).unwrap();
    close(&on_test["test_loss"]["mean"], 1.9734, 1e-12);
    close(&on_test["test_loss_se"], 0.0125, 1e-12);
    assert!(on_test["test_loss"]["ci95"].is_null());
    assert_eq!(groups[1]["selected_on"], "test");
    // Older summaries: best_test_loss ranks, final_test_loss is the test figure.
    let old = rows.iter().find(|r| r["group"] == 3).unwrap();
    close(&old["selection_loss"]["mean"], 2.05, 1e-12);
    close(&old["test_loss"]["mean"], 2.07, 1e-12);
    assert_eq!(groups[2]["selected_on"], "test");

    let table = report(dir.path(), &runs, &[]);
    assert!(table.contains("1.9734±0.0125 se"), "{table}");
    assert!(table.contains("group 2: selected on test"), "{table}");
    assert!(
        table.contains("group 2: warning: 153 of 1000 test items also occur in the training split"),
        "{table}"
    );
    assert!(!table.contains("group 1: warning"), "{table}");
    assert!(table.contains("damaged: <runs>/damaged/"), "{table}");
}

#[test]
fn an_empty_directory_says_no_runs_were_found() {
    let dir = tempfile::tempdir().unwrap();
    let out = makemore(&["report", "."], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("no runs found"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn filter_by_top_and_plot() {
    let (dir, runs) = fixture();
    let csv = report(
        dir.path(),
        &runs,
        &[
            "--format",
            "csv",
            "--filter",
            "schedule.learning_rate=0.003",
        ],
    );
    assert_eq!(
        csv.lines().count(),
        2,
        "0.003 in the sweep's group only: {csv}"
    );
    let csv = report(
        dir.path(),
        &runs,
        &["--format", "csv", "--by", "model.type"],
    );
    assert_eq!(csv.lines().count(), 4, "one row per group: {csv}");
    let csv = report(dir.path(), &runs, &["--format", "csv", "--top", "1"]);
    assert_eq!(csv.lines().count(), 4, "the best of each group: {csv}");
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
        lines >= 5,
        "a curve per configuration, and the axes: {lines}"
    );
}

/// metrics.csv's one reading rule, as the report applies it: a last line a kill cut short is
/// left out (the run is reported), any other row that does not read makes the run damaged,
/// named with its line.
#[test]
fn a_torn_last_metrics_line_is_left_out_and_a_bad_row_named() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let run = |name: &'static str| Fixture {
        name,
        dir: "20261101-100000-000001",
        seed: 1,
        lr: "0.01",
        fields: done(2.10, 2.15),
    };
    let header = "step,split,loss,lr,elapsed_s,tokens_per_s";
    let torn = write_run(&runs, &run("torn"));
    let metrics = format!("{header}\n500,val,2.6,0.01,1,1\n3000,val,2.1,0.01,2,1\n3010,tr");
    std::fs::write(torn.join("metrics.csv"), metrics).unwrap();
    let bad = write_run(&runs, &run("bad"));
    let metrics = format!("{header}\n500,val,2.6,0.01,1,1\n3000,val,oops,0.01,2,1\n");
    std::fs::write(bad.join("metrics.csv"), metrics).unwrap();

    let json: Value =
        serde_json::from_str(&report(dir.path(), &runs, &["--format", "json"])).unwrap();
    let reported: Vec<&str> = (json["rows"].as_array().unwrap().iter())
        .flat_map(|r| r["runs"].as_array().unwrap())
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reported.iter().all(|r| r.contains("/torn/")),
        "{reported:?}"
    );
    assert_eq!(reported.len(), 1, "{reported:?}");
    let damaged = json["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    let problem = damaged[0]["problem"].as_str().unwrap();
    assert!(
        damaged[0]["dir"].as_str().unwrap().contains("/bad/"),
        "{damaged:?}"
    );
    assert!(problem.contains("metrics.csv: line 3"), "{problem}");
}

/// A run's generation metrics at a temperature: shares with their binomial standard errors over
/// 1,000 samples, a judge gap and a length distance with made-up standard errors.
fn generated(temperature: f64, new: f64, copied: f64, gap: f64) -> Value {
    let share = |p: f64| json!({"value": p, "se": (p * (1.0 - p) / 1000.0).sqrt()});
    json!({"temperature": temperature, "samples": 1000, "new": share(new),
           "copied": share(copied), "held_out": share(1.0 - new - copied),
           "distinct": share(0.9), "judge_new": {"value": 2.0 + gap, "se": 0.01},
           "judge_reference": {"value": 2.0, "se": 0.01},
           "judge_gap": {"value": gap, "se": 0.014}, "length_tv": {"value": 0.05, "se": 0.01}})
}

/// Three configurations of two seeds, ranked by val a, b, c; by new samples b, c, a; by copies
/// b, c, a; by the size of the judge gap a, c, b. a's runs measured a frontier too.
fn generation_fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let frontier = |gaps: [f64; 3]| {
        let news = [0.5, 0.8, 0.95];
        let at = [0.5, 1.0, 1.5].iter().zip(news.iter().zip(gaps));
        let points: Vec<Value> = at.map(|(&t, (&n, g))| generated(t, n, 0.0, g)).collect();
        Value::from(points)
    };
    let run = |dir, seed, lr, val, (new, copied, gap): (f64, f64, f64), curve: Option<[f64; 3]>| {
        let mut fields = done(val, val + 0.05);
        fields["generation"] = generated(1.0, new, copied, gap);
        if let Some(gaps) = curve {
            fields["frontier"] = frontier(gaps);
        }
        Fixture {
            name: "sweep",
            dir,
            seed,
            lr,
            fields,
        }
    };
    for fixture in [
        run(
            "a1",
            1,
            "0.01",
            2.10,
            (0.80, 0.15, -0.02),
            Some([-0.3, -0.04, 0.2]),
        ),
        run(
            "a2",
            2,
            "0.01",
            2.12,
            (0.82, 0.13, -0.04),
            Some([-0.3, 0.0, 0.3]),
        ),
        run("b1", 1, "0.003", 2.20, (0.95, 0.03, 0.5), None),
        run("b2", 2, "0.003", 2.22, (0.97, 0.02, 0.6), None),
        run("c1", 1, "0.001", 2.30, (0.90, 0.08, 0.10), None),
        run("c2", 2, "0.001", 2.32, (0.88, 0.10, 0.12), None),
    ] {
        write_run(&runs, &fixture);
    }
    (dir, runs)
}

fn order(json: &Value) -> Vec<String> {
    (rows(json).iter())
        .map(|r| {
            r["keys"]["schedule.learning_rate"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn rank_by_a_generation_metric() {
    let (dir, runs) = generation_fixture();
    let ranked = |by: &str| -> Value {
        let text = report(dir.path(), &runs, &["--format", "json", "--rank-by", by]);
        serde_json::from_str(&text).unwrap()
    };
    assert_eq!(order(&ranked("val")), ["0.01", "0.003", "0.001"]);
    assert_eq!(order(&ranked("test")), ["0.01", "0.003", "0.001"]);
    assert_eq!(order(&ranked("copied")), ["0.003", "0.001", "0.01"]);
    assert_eq!(order(&ranked("gap")), ["0.01", "0.001", "0.003"], "|gap|");
    let by_new = ranked("new");
    assert_eq!(
        order(&by_new),
        ["0.003", "0.001", "0.01"],
        "the most new first"
    );
    let by_new = rows(&by_new);
    let (b, c) = (row(&by_new, "0.003"), row(&by_new, "0.001"));
    close(&b["ranked"]["mean"], 0.96, 1e-12);
    close(
        &b["generation"]["figures"]["new"]["std"],
        0.02 / 2f64.sqrt(),
        1e-12,
    );
    close(
        &c["generation"]["figures"]["judge_gap"]["mean"],
        0.11,
        1e-12,
    );
    let (t, df) = welch(&[0.90, 0.88], &[0.95, 0.97]);
    close(&c["p_vs_top"], two_sided_p(t, df), 1e-6);
    // The held-out hits are 1 − new − copied here: b's are 0.02 and 0.01.
    close(
        &b["generation"]["figures"]["held_out"]["mean"],
        0.015,
        1e-12,
    );
    // ranked by gap, the figure is the size of the gap: a's |−0.02| and |−0.04|.
    let by_gap = ranked("gap");
    close(&row(&rows(&by_gap), "0.01")["ranked"]["mean"], 0.03, 1e-12);

    let table = report(dir.path(), &runs, &["--rank-by", "new"]);
    for words in [
        "hits/1k",
        "gap",
        "len TV",
        "best T",
        "ranked by the share of new samples",
    ] {
        assert!(table.contains(words), "{words} in\n{table}");
    }
    let csv = report(dir.path(), &runs, &["--format", "csv", "--rank-by", "new"]);
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .contains(",new_mean,new_std,new_se,"),
        "{csv}"
    );
    let bad = makemore(
        &["report", runs.to_str().unwrap(), "--rank-by", "loss"],
        dir.path(),
        &[],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

/// The frontier over seeds, and its best temperature by the stated criterion: the most new
/// samples among the temperatures whose mean gap is at most 0.1 nats per character.
#[test]
fn the_frontier_and_its_best_temperature() {
    let (dir, runs) = generation_fixture();
    let json: Value =
        serde_json::from_str(&report(dir.path(), &runs, &["--format", "json"])).unwrap();
    let rows = rows(&json);
    let a = row(&rows, "0.01");
    let frontier = a["frontier"].as_array().unwrap();
    let temperatures: Vec<f64> = frontier
        .iter()
        .map(|g| g["temperature"].as_f64().unwrap())
        .collect();
    assert_eq!(temperatures, [0.5, 1.0, 1.5]);
    // Gaps by temperature, mean over the two seeds: −0.3, −0.02, 0.25; new 0.5, 0.8, 0.95.
    close(&frontier[1]["figures"]["judge_gap"]["mean"], -0.02, 1e-12);
    close(&frontier[2]["figures"]["judge_gap"]["mean"], 0.25, 1e-12);
    assert_eq!(
        a["best_temperature"], 1.0,
        "1.5 is newer, but 0.25 nats/char off"
    );
    assert!(
        row(&rows, "0.003")["best_temperature"].is_null(),
        "no frontier"
    );
    let svg = dir.path().join("plot.svg");
    report(dir.path(), &runs, &["--plot", svg.to_str().unwrap()]);
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(
        drawn.contains("the temperature frontier"),
        "the frontier panel"
    );
}

/// The plot, as the SVG's text places it: a strip per group under its title, each
/// configuration's name in the legend beside the curves (right of their panel, never over it)
/// and on the ranking panel's axis, both top to bottom in the ranking's order, and each row's
/// comparison with the top row as the table writes it.
#[test]
fn the_plot_has_a_strip_per_group_in_the_rankings_order() {
    let (dir, runs) = fixture();
    let json: Value =
        serde_json::from_str(&report(dir.path(), &runs, &["--format", "json"])).unwrap();
    let svg = dir.path().join("plot.svg");
    report(dir.path(), &runs, &["--plot", svg.to_str().unwrap()]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let document = roxmltree::Document::parse(&text).unwrap();
    // (content, x, y) of every text element.
    let texts: Vec<(String, f64, f64)> = (document.descendants())
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            let at = |a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
            (
                n.text().unwrap_or_default().trim().to_string(),
                at("x"),
                at("y"),
            )
        })
        .collect();
    let placed = |content: &str| -> Vec<(f64, f64)> {
        (texts.iter())
            .filter(|t| t.0 == content)
            .map(|t| (t.1, t.2))
            .collect()
    };
    let groups = json["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    let titles: Vec<f64> = (1..=3)
        .map(|id| {
            let title = texts
                .iter()
                .find(|t| t.0.starts_with(&format!("group {id} (")));
            title.unwrap_or_else(|| panic!("group {id}'s title")).2
        })
        .collect();
    assert!(titles.windows(2).all(|w| w[0] < w[1]), "{titles:?}");

    // The sweep's group: val 2.12 (lr 0.01), 2.15 (0.003), 2.405 (0.001), in that order.
    let rows = json["rows"].as_array().unwrap();
    let sweep: Vec<&Value> = rows.iter().filter(|r| r["group"] == 1).collect();
    let order: Vec<&str> = sweep
        .iter()
        .map(|r| r["keys"]["schedule.learning_rate"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["0.01", "0.003", "0.001"]);
    let names: Vec<String> = (order.iter().enumerate())
        .map(|(place, lr)| format!("{}. learning_rate={lr}", place + 1))
        .collect();
    let legend: Vec<(f64, f64)> = names.iter().map(|n| placed(n)[0]).collect();
    let axis: Vec<(f64, f64)> = names.iter().map(|n| placed(n)[1]).collect();
    for column in [&legend, &axis] {
        assert!(
            column.windows(2).all(|w| w[0].1 < w[1].1),
            "top to bottom: {column:?}"
        );
        assert!(
            column.iter().all(|p| p.1 > titles[0] && p.1 < titles[1]),
            "in group 1's strip"
        );
    }
    assert!(
        legend.iter().all(|p| p.0 > 560.0),
        "beside the curves' panel: {legend:?}"
    );
    assert!(
        axis.iter().all(|p| p.0 > legend[0].0),
        "the ranking right of the legend"
    );
    // The comparison beside each row's dot, as the table's vs top column has it.
    let table = report(dir.path(), &runs, &["--format", "md"]);
    for row in &sweep[1..] {
        let p = row["p_vs_top"].as_f64().unwrap();
        let mark = match row["tied_with_top"].as_bool().unwrap() {
            true => format!("tie p={p:.2}"),
            false if p < 0.001 => "p<0.001".into(),
            false => format!("p={p:.3}"),
        };
        assert!(
            table.contains(&format!("| {mark} |")),
            "{mark} in the table"
        );
        assert_eq!(placed(&mark).len(), 1, "{mark} in the plot");
    }
    assert_eq!(placed("top").len(), 3, "each group's top row");
}
