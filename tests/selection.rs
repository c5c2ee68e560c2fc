//! Selection on validation: the best checkpoint and early stopping follow val, the test split is
//! read once at the end (for the selected checkpoint and the last model), and the summary says
//! what was selected on what, how sure the test figure is and how much of it train also holds.

mod common;

use std::path::{Path, PathBuf};

use common::{experiment, makemore, only_run, stderr, stdout, write};
use makemore::checkpoint::Checkpoint;
use makemore::rundir::{Summary, Weights, read_summary};
use makemore::trained::{Trained, Which};

fn train(dir: &Path, file: &str, sets: &[&str]) -> (PathBuf, String) {
    let mut args = vec!["run", file, "--runs", "runs"];
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = makemore(&args, dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let name = Path::new(file).file_stem().unwrap().to_str().unwrap();
    (only_run(&dir.join("runs"), name), stdout(&out))
}

/// metrics.csv's (step, split, loss) rows.
fn rows(run: &Path) -> Vec<(usize, String, f64)> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].to_string(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

/// The loss of a checkpoint over every item of a split, and its standard error, computed here
/// from the items' log-probabilities as `score` gives them: the mean over characters, and the
/// delta-method standard error of a ratio in its textbook form
/// (s_y² − 2 R s_xy + R² s_x²) / (m x̄²), x the items' lengths and y their losses.
fn loss_and_se(run: &Path, which: Which, items: impl Fn(&Trained) -> Vec<String>) -> (f64, f64) {
    let trained = Trained::open(run, which).unwrap();
    let items = items(&trained);
    let scores = makemore::score::scores(&trained, &items).unwrap();
    let y: Vec<f64> = scores.iter().map(|(total, _)| -total).collect();
    let x: Vec<f64> = items
        .iter()
        .map(|i| (i.chars().count() + 1) as f64)
        .collect();
    let m = y.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / m, y.iter().sum::<f64>() / m);
    let ratio = my / mx;
    let cov = |a: &[f64], ma: f64, b: &[f64], mb: f64| {
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - ma) * (b - mb))
            .sum::<f64>()
            / (m - 1.0)
    };
    let var = cov(&y, my, &y, my) - 2.0 * ratio * cov(&x, mx, &y, my)
        + ratio * ratio * cov(&x, mx, &x, mx);
    (ratio, (var / (m * mx * mx)).sqrt())
}

fn test_items(trained: &Trained) -> Vec<String> {
    trained.data.test.items.clone()
}

#[test]
fn with_a_validation_split_val_selects_and_test_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    // 40 names: 4 test, 8 val (all of them in every estimate), a rate that overfits fast.
    let file = experiment(dir.path(), "transformer", "");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("test_size = 4\n", "test_size = 4\nval_fraction = 0.2\n"),
    )
    .unwrap();
    let (run, printed) = train(
        dir.path(),
        "transformer.toml",
        &[
            "schedule.steps=400",
            "schedule.eval_every=20",
            "schedule.learning_rate=3e-2",
            "schedule.early_stop_patience=4",
            "schedule.eval_batches=2",
        ],
    );
    let summary = read_summary(&run).unwrap();
    assert_eq!(summary.selected_on(), makemore::data::SplitName::Val);
    let rows = rows(&run);
    let last_step = summary.step;
    // The test split appears once in metrics.csv: the last model, at the last step.
    let test_rows: Vec<_> = rows.iter().filter(|(_, s, _)| s == "test").collect();
    assert_eq!(test_rows.len(), 1, "{rows:?}");
    assert_eq!(test_rows[0].0, last_step);

    // It overfits and stops early; the selected step is the val estimates' minimum.
    assert!(last_step < 400, "early stopping on val: {last_step}");
    let estimates: Vec<&(usize, String, f64)> = rows
        .iter()
        .filter(|(step, split, _)| split == "val" && step % 20 == 0)
        .collect();
    let (best_step, best) = estimates
        .iter()
        .take(estimates.len() - 1) // the last model's every-item row at the last step
        .fold((0, f64::INFINITY), |(s, b), (step, _, loss)| {
            if *loss < b { (*step, *loss) } else { (s, b) }
        });
    assert_eq!(summary.selected_step, Some(best_step));
    assert!(
        best_step < last_step,
        "it overfitted: {best_step} vs {last_step}"
    );
    assert_eq!(summary.best_estimate, Some(best));
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.contains("no val improvement in 4 evaluations"), "{log}");

    // best.ckpt holds the selected step, and the summary's test figure is its loss over every
    // test item, with the standard error, recomputed here from the item scores.
    let best_ckpt = Checkpoint::read(&run.join("checkpoints/best.ckpt")).unwrap();
    assert_eq!(best_ckpt.step, best_step);
    let (test, se) = loss_and_se(&run, Which::Best, test_items);
    assert!(
        (summary.test_loss.unwrap() - test).abs() < 1e-5,
        "{summary:?} vs {test}"
    );
    assert!((summary.test_loss_se.unwrap() - se).abs() < 1e-5, "{se}");
    let (val, _) = loss_and_se(&run, Which::Best, |t| t.data.val.items.clone());
    assert!((summary.val_loss.unwrap() - val).abs() < 1e-5);
    let (last, _) = loss_and_se(&run, Which::Last, test_items);
    assert!((summary.test_loss_last.unwrap() - last).abs() < 1e-5);
    assert_ne!(summary.test_loss, summary.test_loss_last);
    assert!(
        printed.contains(&format!("selected on val at step {best_step}")),
        "{printed}"
    );
}

#[test]
fn without_a_validation_split_test_selects_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    let (run, printed) = train(dir.path(), "bigram.toml", &[]);
    let summary: Summary = read_summary(&run).unwrap();
    assert_eq!(summary.selected_on(), makemore::data::SplitName::Test);
    assert!(summary.val_loss.is_none());
    assert_eq!(
        Checkpoint::read(&run.join("checkpoints/best.ckpt"))
            .unwrap()
            .step,
        summary.selected_step.unwrap()
    );
    assert!(printed.contains("selected on test"), "{printed}");
    assert!(printed.contains("not held out"), "{printed}");
    // A run without steps selects its only model.
    experiment(dir.path(), "counts", "");
    let (run, _) = train(dir.path(), "counts.toml", &[]);
    let summary = read_summary(&run).unwrap();
    assert_eq!(summary.selected_step, Some(0));
    assert_eq!(summary.test_loss, summary.test_loss_last);
}

/// Every name three times: two test slots cannot hold all three copies of a name, so every test
/// item also occurs in train; with `dedup` none does.
#[test]
fn the_overlap_of_held_out_items_with_train_is_counted_and_warned() {
    let dir = tempfile::tempdir().unwrap();
    let tripled: Vec<&str> = common::NAMES.iter().flat_map(|n| [*n, *n, *n]).collect();
    write(dir.path(), "names.txt", &(tripled.join("\n") + "\n"));
    let config = "[dataset]\npath = \"names.txt\"\ntest_size = 2\n\n[model]\ntype = \"counts\"\n";
    write(dir.path(), "tripled.toml", config);
    let (run, printed) = train(dir.path(), "tripled.toml", &[]);
    let overlap = read_summary(&run).unwrap().overlap.unwrap();
    assert_eq!((overlap.test_items, overlap.test_in_train), (2, 2));
    assert!(
        printed.contains("2 of 2 test items also occur in the training split"),
        "{printed}"
    );
    std::fs::remove_dir_all(dir.path().join("runs")).unwrap();
    let (run, printed) = train(dir.path(), "tripled.toml", &["dataset.dedup=true"]);
    let overlap = read_summary(&run).unwrap().overlap.unwrap();
    assert_eq!((overlap.test_items, overlap.test_in_train), (2, 0));
    assert!(!printed.contains("also occur"), "{printed}");
}

#[test]
fn a_diverged_run_fails_and_keeps_its_best_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "");
    let args = [
        "run",
        "mlp.toml",
        "--runs",
        "runs",
        "--set",
        "schedule.learning_rate=1e38",
    ];
    let out = makemore(&args, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let run = only_run(&dir.path().join("runs"), "mlp");
    let summary = read_summary(&run).unwrap();
    assert_eq!(summary.status, makemore::rundir::Status::Failed);
    let error = summary.error.unwrap();
    assert!(error.contains("diverged"), "{error}");
    // Diverged at step 1 or 2, before any evaluation: nothing NaN became "best".
    assert!(
        summary.best_estimate.is_none(),
        "{:?}",
        summary.best_estimate
    );
}

/// With weight averaging, each evaluation estimates the average beside the trained weights
/// (`val_ema` rows), selection takes the better of the two at every step, best.ckpt holds the
/// weights it chose (its figures recomputed from best.ckpt's scores), and the trained weights'
/// losses are those of the same run without averaging, bit for bit.
#[test]
fn weight_averaging_is_estimated_and_selected_on_val() {
    let dir = tempfile::tempdir().unwrap();
    let file = experiment(dir.path(), "transformer", "");
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text.replace("test_size = 4\n", "test_size = 4\nval_fraction = 0.2\n");
    std::fs::write(&file, text).unwrap();
    let sets = [
        "schedule.steps=200",
        "schedule.eval_every=20",
        "schedule.learning_rate=3e-2",
    ];
    let (plain, _) = train(dir.path(), "transformer.toml", &sets);
    let plain = rows(&plain);
    std::fs::rename(dir.path().join("runs"), dir.path().join("plain")).unwrap();
    let averaged = [&sets[..], &["schedule.ema_decay=0.9"]].concat();
    let (run, printed) = train(dir.path(), "transformer.toml", &averaged);
    let rows = rows(&run);
    let without = |split: &str| -> Vec<(usize, String, f64)> {
        rows.iter().filter(|r| r.1 != split).cloned().collect()
    };
    assert_eq!(without("val_ema"), plain);

    let summary = read_summary(&run).unwrap();
    let at = |split: &str, step: usize| {
        rows.iter()
            .find(|r| r.0 == step && r.1 == split)
            .map(|r| r.2)
            .unwrap()
    };
    let steps = (20..=200).step_by(20);
    let candidates: Vec<(usize, f64, Weights)> = steps
        .map(|step| match (at("val", step), at("val_ema", step)) {
            (trained, average) if average < trained => (step, average, Weights::Average),
            (trained, _) => (step, trained, Weights::Trained),
        })
        .collect();
    let best = candidates
        .iter()
        .fold(candidates[0], |b, c| if c.1 < b.1 { *c } else { b });
    assert_eq!(
        (
            summary.selected_step,
            summary.best_estimate,
            summary.selected_weights
        ),
        (Some(best.0), Some(best.1), Some(best.2))
    );
    assert_eq!(
        best.2,
        Weights::Average,
        "the average wins here: {candidates:?}"
    );
    let best_ckpt = Checkpoint::read(&run.join("checkpoints/best.ckpt")).unwrap();
    assert!(best_ckpt.best_average && best_ckpt.average.is_none());
    // Every estimate holds all of val's 8 items: best.ckpt's val over every item is the
    // average's estimate that chose it.
    let (val, _) = loss_and_se(&run, Which::Best, |t| t.data.val.items.clone());
    assert!((val - best.1).abs() < 1e-5, "{val} vs {best:?}");
    assert!((summary.val_loss.unwrap() - val).abs() < 1e-5);
    let (test, _) = loss_and_se(&run, Which::Best, test_items);
    assert!((summary.test_loss.unwrap() - test).abs() < 1e-5);
    assert!(
        printed.contains(&format!("at step {} (the weight average)", best.0)),
        "{printed}"
    );
}
