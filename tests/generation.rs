//! The generation metrics of whole runs: a model that memorised its data copies it, on names a
//! Transformer's new samples are more plausible to the judge than a bigram's, and `sample
//! --stats` counts what `--mark` marks.

mod common;

use std::path::Path;

use common::{experiment, makemore, only_run, stderr, stdout};
use makemore::generation::Metrics;
use makemore::rundir::{Summary, read_summary};

fn run(dir: &Path, file: &str, name: &str, sets: &[&str]) -> Summary {
    let runs = dir.join("runs");
    let name = format!("name={name}");
    let mut args = vec![
        "run",
        file,
        "--runs",
        runs.to_str().unwrap(),
        "--set",
        &name,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = makemore(&args, dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    read_summary(&only_run(&runs, &name[5..])).unwrap()
}

/// A Transformer trained far past the point of memorising 36 training names draws mostly
/// those names back: high on copied, low on new; an untrained one of the same shape the reverse.
#[test]
fn a_model_that_memorised_its_data_copies_it() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "transformer", "");
    let sets = [
        "model.n_embd=32",
        "schedule.learning_rate=3e-3",
        "schedule.eval_every=800",
        "generation.count=400",
        "generation.temperatures=[0.5, 1.5, 0.5]",
    ];
    let steps = |n: &'static str| [&sets[..], &[n]].concat();
    let trained = run(
        dir.path(),
        "transformer.toml",
        "memorised",
        &steps("schedule.steps=800"),
    );
    let untrained = run(
        dir.path(),
        "transformer.toml",
        "untrained",
        &steps("schedule.steps=1"),
    );
    let generated = |s: &Summary| s.generation.clone().expect("measured");
    let (memorised, fresh) = (generated(&trained), generated(&untrained));
    assert!(memorised.copied.value > 0.7, "{}", memorised.line());
    assert!(memorised.new.value < 0.3, "{}", memorised.line());
    assert!(fresh.new.value > 0.9, "{}", fresh.line());
    assert_eq!(memorised.samples, 400);
    // new + copied + held-out hits cover every sample.
    let sum = memorised.new.value + memorised.copied.value + memorised.held_out.value;
    assert!((sum - 1.0).abs() < 1e-12);
    // The frontier: each temperature once, coolest first; sampling.temperature's in the headline.
    let temperatures: Vec<f64> = trained
        .frontier
        .iter()
        .map(|m: &Metrics| m.temperature)
        .collect();
    assert_eq!(temperatures, [0.5, 1.5]);
    assert_eq!(memorised.temperature, 1.0);
    assert!(
        trained.frontier[0].copied.value > trained.frontier[1].copied.value,
        "a cooler model copies more"
    );
}

/// `sample --stats`: the shares it reports are the shares of the marks `--mark` prints.
#[test]
fn sample_stats_count_what_the_marks_say() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    let sets = ["schedule.steps=300", "schedule.learning_rate=0.3"];
    run(dir.path(), "bigram.toml", "bigram", &sets);
    let run = only_run(&dir.path().join("runs"), "bigram");
    let n = 500;
    let args = [
        "sample",
        run.to_str().unwrap(),
        "-n",
        "500",
        "--mark",
        "--stats",
    ];
    let out = makemore(&args, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let marks: Vec<String> = (stdout(&out).lines())
        .map(|l| l.rsplit('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(marks.len(), n);
    let share = |mark: &str| marks.iter().filter(|m| *m == mark).count() as f64 / n as f64;
    let line = stderr(&out);
    let expected = format!("generated {n} at temperature 1: new {:.3}±", share("new"));
    assert!(line.contains(&expected), "{expected} in {line}");
    assert!(
        line.contains(&format!("copied {:.3}±", share("in-train"))),
        "{line}"
    );
}

/// On data/names.txt, a bigram's new names are judged less plausible than a Transformer's.
#[test]
fn a_bigrams_new_names_are_less_plausible_than_a_transformers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let sets = [
        "schedule.steps=1000",
        "schedule.eval_every=500",
        "schedule.sample_every=1000",
    ];
    let gap = |file: &str, name: &str| {
        let path = root.join("experiments").join(file);
        let summary = run(dir.path(), path.to_str().unwrap(), name, &sets);
        let generated = summary.generation.expect("measured");
        (generated.judge_gap.expect("new samples"), generated.line())
    };
    let (bigram, bigram_line) = gap("bigram.toml", "bigram");
    let (transformer, transformer_line) = gap("transformer.toml", "transformer");
    let apart = 3.0 * bigram.se.unwrap().hypot(transformer.se.unwrap());
    assert!(
        bigram.value - transformer.value > apart,
        "bigram: {bigram_line}\ntransformer: {transformer_line}"
    );
}
