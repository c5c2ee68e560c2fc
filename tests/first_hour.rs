//! A newcomer's first hour with their own file, through the binary: training straight from a
//! data file, a starter experiment, text clean-up, warnings about the data, messages for runs
//! not yet trained, scoring a list line for line, sampling options, and what a sweep and a
//! report say at their end.

mod common;

use std::fs;
use std::path::Path;

use common::{experiment, makemore, stderr, stdout, write};

/// Items of a few accented, hyphenated city names, with a byte-order mark at the start.
fn cities(dir: &Path) -> std::path::PathBuf {
    let base = [
        "São Paulo",
        "Zürich",
        "L'Aquila",
        "Saint-Étienne",
        "Köln",
        "Québec",
    ];
    let items: Vec<String> = (0..240)
        .map(|i| {
            format!(
                "{}{}",
                base[i % base.len()],
                ["", "ville", "-sur-Mer"][i % 3]
            )
        })
        .collect();
    write(
        dir,
        "cities.txt",
        &format!("\u{feff}{}\n", items.join("\n")),
    )
}

/// `makemore args` in `dir`, which must succeed.
fn succeeds(args: &[&str], dir: &Path) -> std::process::Output {
    let out = makemore(args, dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    out
}

/// What `makemore args` in `dir`, which must succeed, prints on stdout.
fn printed(args: &[&str], dir: &Path) -> String {
    stdout(&succeeds(args, dir))
}

fn fast() -> Vec<&'static str> {
    vec![
        "--set",
        "schedule.steps=20",
        "--set",
        "schedule.eval_every=10",
        "--set",
        "model.n_embd=8",
        "--set",
        "model.n_embd2=8",
    ]
}

#[test]
fn run_trains_the_shipped_experiment_straight_from_a_data_file() {
    let dir = tempfile::tempdir().unwrap();
    cities(dir.path());
    let mut args = vec!["run", "--data", "cities.txt", "--model", "mlp"];
    args.extend(fast());
    let out = succeeds(&args, dir.path());
    let run = common::only_run(&dir.path().join("runs"), "cities-mlp");
    let config = fs::read_to_string(run.join("config.toml")).unwrap();
    // The shipped mlp.toml's settings, on this file.
    assert!(config.contains("type = \"mlp\""), "{config}");
    assert!(config.contains("val_fraction = 0.1"), "{config}");
    assert!(config.contains("cities.txt"), "{config}");
    // The final figures are said once.
    let printed = stdout(&out);
    assert_eq!(
        printed.matches("selected on val at step").count(),
        1,
        "{printed}"
    );
    assert_eq!(
        printed.matches("last model (nats per character").count(),
        1,
        "{printed}"
    );

    let out = makemore(
        &["run", "--data", "cities.txt", "--model", "mpl"],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean \"mlp\"?"),
        "{}",
        stderr(&out)
    );
    let out = makemore(&["run", "cities.txt"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("makemore run --data cities.txt"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn init_writes_a_starter_experiment_that_checks_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    cities(dir.path());
    succeeds(
        &[
            "init",
            "mine.toml",
            "--data",
            "cities.txt",
            "--model",
            "gru",
        ],
        dir.path(),
    );
    let text = fs::read_to_string(dir.path().join("mine.toml")).unwrap();
    assert!(text.contains("path = \"cities.txt\""), "{text}");
    assert!(text.contains("type = \"gru\""), "{text}");
    assert!(text.contains("# [dataset] lowercase = true"), "{text}");
    succeeds(&["check", "mine.toml"], dir.path());
    let mut args = vec!["run", "mine.toml"];
    args.extend(fast());
    succeeds(&args, dir.path());
    // It never writes over a file.
    let out = makemore(
        &["init", "mine.toml", "--data", "cities.txt"],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(dir.path().join("mine.toml")).unwrap(),
        text
    );
}

#[test]
fn a_byte_order_mark_is_removed_with_a_word_and_text_options_enter_the_split() {
    let dir = tempfile::tempdir().unwrap();
    cities(dir.path());
    let check = |sets: &[&str]| {
        let mut args = vec!["check", "x.toml"];
        args.extend(sets);
        let out = makemore(&args, dir.path(), &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    write(
        dir.path(),
        "x.toml",
        "[dataset]\npath = \"cities.txt\"\ntest_size = 20\n[model]\ntype = \"bigram\"\n",
    );
    let plain = check(&[]);
    assert!(
        plain.contains("removed the byte-order mark (U+FEFF)"),
        "{plain}"
    );
    // Trained on, the mark is no character of the vocabulary.
    let out = succeeds(&["run", "x.toml", "--set", "schedule.steps=1"], dir.path());
    let run = common::only_run(&dir.path().join("runs"), "x");
    let summary = |run: &Path| -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
    };
    // 6 names' letters, space, apostrophe, hyphen: no U+FEFF among them.
    let header = stdout(&out).lines().next().unwrap().to_string();
    let vocab = |header: &str| -> usize {
        header
            .split("vocabulary ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let distinct = |text: &str| {
        let mut chars: Vec<char> = text.chars().filter(|c| *c != '\n').collect();
        chars.sort();
        chars.dedup();
        chars.len()
    };
    let text = fs::read_to_string(dir.path().join("cities.txt")).unwrap();
    let without_mark = text.trim_start_matches('\u{feff}');
    assert_eq!(vocab(&header), distinct(without_mark) + 1, "{header}");
    let with_mark = summary(&run)["split_hash"].clone();

    // Lower-casing merges letters, and its split differs; it is in config.toml only when on.
    let out = succeeds(
        &[
            "run",
            "x.toml",
            "--set",
            "schedule.steps=1",
            "--set",
            "dataset.lowercase=true",
            "--runs",
            "lower",
        ],
        dir.path(),
    );
    let lower = common::only_run(&dir.path().join("lower"), "x");
    let header = stdout(&out).lines().next().unwrap().to_string();
    assert_eq!(
        vocab(&header),
        distinct(&without_mark.to_lowercase()) + 1,
        "{header}"
    );
    assert_ne!(summary(&lower)["split_hash"], with_mark);
    assert!(
        fs::read_to_string(lower.join("config.toml"))
            .unwrap()
            .contains("lowercase = true")
    );
    assert!(
        !fs::read_to_string(run.join("config.toml"))
            .unwrap()
            .contains("lowercase")
    );
}

#[test]
fn nfc_and_nfkc_make_one_character_of_each_way_to_write_a_letter() {
    let dir = tempfile::tempdir().unwrap();
    // "é" as one code point and as e + a combining acute; "ﬁ" (a ligature) beside "fi".
    let items: Vec<String> = (0..60)
        .map(|i| {
            ["caf\u{e9}", "cafe\u{301}", "\u{fb01}n", "fin"][i % 4].to_string() + &"a".repeat(i % 5)
        })
        .collect();
    write(dir.path(), "d.txt", &(items.join("\n") + "\n"));
    write(
        dir.path(),
        "x.toml",
        "[dataset]\npath = \"d.txt\"\ntest_size = 10\n[model]\ntype = \"bigram\"\n",
    );
    let vocabulary = |normalize: &str| -> String {
        let set = format!("dataset.normalize={normalize}");
        let runs = format!("runs-{normalize}");
        let out = succeeds(
            &[
                "run",
                "x.toml",
                "--set",
                "schedule.steps=1",
                "--set",
                &set,
                "--runs",
                &runs,
            ],
            dir.path(),
        );
        let header = stdout(&out).lines().next().unwrap().to_string();
        header
            .split("vocabulary ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    // c a f é e ◌́ ﬁ n i (9) + stop; NFC makes e + ◌́ an é (c a f é ﬁ n i); NFKC also makes ﬁ
    // an f and an i (c a f é n i).
    assert_eq!(vocabulary("none"), "10");
    assert_eq!(vocabulary("nfc"), "8");
    assert_eq!(vocabulary("nfkc"), "7");
    let out = makemore(
        &["check", "x.toml", "--set", "dataset.normalize=nfd"],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nfc, nfkc"), "{}", stderr(&out));
}

#[test]
fn check_says_what_the_data_costs_and_what_its_splits_can_measure() {
    let dir = tempfile::tempdir().unwrap();
    // 200 short items and two of 40 characters: the mlp's default context is set by those two.
    let mut items: Vec<String> = common::NAMES
        .iter()
        .cycle()
        .take(200)
        .map(|s| s.to_string())
        .collect();
    items.push("a".repeat(40));
    items.push("b".repeat(40));
    write(dir.path(), "long.txt", &(items.join("\n") + "\n"));
    write(
        dir.path(),
        "m.toml",
        "[dataset]\npath = \"long.txt\"\ntest_size = 20\nval_fraction = 0.1\n[model]\ntype = \"mlp\"\n",
    );
    let text = printed(&["check", "m.toml"], dir.path());
    assert!(text.contains("the mlp's context is 41 tokens"), "{text}");
    assert!(text.contains("set by the 2 items longer than"), "{text}");
    assert!(text.contains("model.block_size = "), "{text}");
    // max_len is said even at 0, which config.toml leaves out.
    assert!(text.contains("dataset.max_len = 0"), "{text}");
    assert!(
        text.contains("the test split holds only 20 items"),
        "{text}"
    );

    // Ten lines: one test item, and the end says there is no standard error.
    write(
        dir.path(),
        "ten.txt",
        &(common::NAMES[..10].join("\n") + "\n"),
    );
    write(
        dir.path(),
        "t.toml",
        "[dataset]\npath = \"ten.txt\"\n[model]\ntype = \"bigram\"\n[schedule]\nsteps = 5\n",
    );
    let text = printed(&["run", "t.toml"], dir.path());
    assert!(text.contains("the test split holds only 1 item"), "{text}");
    assert!(text.contains("(1 test item: no standard error)"), "{text}");
}

#[test]
fn sample_and_score_say_when_a_run_has_no_checkpoint_yet_or_only_a_partial_one() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    succeeds(&["run", "bigram.toml", "--until", "20"], dir.path());
    let run = common::only_run(&dir.path().join("runs"), "bigram");
    let run_arg = run.to_str().unwrap();
    let out = succeeds(&["sample", run_arg, "-n", "2"], dir.path());
    assert!(
        stderr(&out).contains("interrupted at step 20 of 60: this is a partial model"),
        "{}",
        stderr(&out)
    );
    let out = makemore(&["score", run_arg, "emma"], dir.path(), &[]);
    assert!(stderr(&out).contains("partial model"), "{}", stderr(&out));

    // As a run is before its first checkpoint: running, no checkpoints.
    fs::remove_dir_all(run.join("checkpoints")).unwrap();
    fs::create_dir(run.join("checkpoints")).unwrap();
    let text = fs::read_to_string(run.join("summary.json")).unwrap();
    let mut summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    summary["status"] = "running".into();
    summary["step"] = 5.into();
    fs::write(run.join("summary.json"), summary.to_string()).unwrap();
    for args in [vec!["sample", run_arg], vec!["score", run_arg, "emma"]] {
        let out = makemore(&args, dir.path(), &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("the run is training"), "{err}");
        assert!(
            err.contains("its first comes with its first evaluation, at step 20"),
            "{err}"
        );
        assert!(!err.contains("No such file"), "{err}");
    }
}

#[test]
fn score_gives_a_line_for_each_input_line_and_names_unknown_characters() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    succeeds(&["run", "bigram.toml"], dir.path());
    let run = common::only_run(&dir.path().join("runs"), "bigram");
    let score = |extra: &[&str]| {
        let mut command = common::command(dir.path());
        command.arg("score").arg(&run).args(extra);
        common::output_with_input(&mut command, "emma\n\nzoë\nava\n".as_bytes())
    };
    let out = score(&[]);
    assert_eq!(out.status.code(), Some(2));
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[0].starts_with("emma\t-"), "{lines:?}");
    assert_eq!(lines[1], "");
    assert_eq!(lines[2], "zoë\t-\t-");
    assert!(lines[3].starts_with("ava\t-"), "{lines:?}");
    assert!(
        stderr(&out).contains("line 3: \"zoë\": \"ë\": characters outside the model's vocabulary"),
        "{}",
        stderr(&out)
    );
    let out = score(&["--skip-unknown"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(lines, ["emma", "ava"]);
}

#[test]
fn sampling_is_greedy_at_temperature_zero_and_keeps_to_its_lengths() {
    let dir = tempfile::tempdir().unwrap();
    experiment(
        dir.path(),
        "bigram",
        "top_p = 0.9\nmin_len = 2\nmax_len = 6\n",
    );
    succeeds(&["run", "bigram.toml"], dir.path());
    let run = common::only_run(&dir.path().join("runs"), "bigram");
    let config = fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        config.contains("top_p = 0.9") && config.contains("min_len = 2"),
        "{config}"
    );
    let run_arg = run.to_str().unwrap();
    let sample = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["sample", run_arg, "-n", "200"];
        args.extend(extra);
        let out = succeeds(&args, dir.path());
        stdout(&out).lines().map(String::from).collect()
    };
    let greedy = sample(&["--temperature", "0"]);
    assert!(greedy.iter().all(|s| *s == greedy[0]), "{greedy:?}");
    let bounded = sample(&["--min-len", "3", "--max-len", "5"]);
    assert!(
        bounded.iter().all(|s| (3..=5).contains(&s.chars().count())),
        "{bounded:?}"
    );
    let out = makemore(
        &["sample", run_arg, "--min-len", "5", "--max-len", "3"],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));

    // An untrained bigram ends an item at once one time in 27: shown as (empty) where marked.
    succeeds(
        &[
            "run",
            "bigram.toml",
            "--set",
            "schedule.steps=0",
            "--runs",
            "zero",
        ],
        dir.path(),
    );
    let zero = common::only_run(&dir.path().join("zero"), "bigram");
    let out = makemore(
        &["sample", zero.to_str().unwrap(), "-n", "300", "--mark"],
        dir.path(),
        &[],
    );
    assert!(
        stdout(&out).lines().any(|l| l == "(empty)\tnew"),
        "{}",
        stdout(&out)
    );
    assert!(
        !stdout(&out).lines().any(|l| l.starts_with('\t')),
        "{}",
        stdout(&out)
    );
}

#[test]
fn help_describes_every_argument_and_the_readme_every_key() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["run", "check", "init"] {
        let out = makemore(&[command, "--help"], dir.path(), &[]);
        assert_eq!(out.status.code(), Some(0));
        let help = stdout(&out);
        let positional = help
            .lines()
            .skip_while(|l| !l.starts_with("Arguments:"))
            .nth(1)
            .unwrap_or_else(|| panic!("{command}: {help}"));
        assert!(
            positional.split_whitespace().count() > 1,
            "{command}: {positional}"
        );
        if command != "init" {
            let set = help.lines().find(|l| l.contains("--set")).unwrap();
            assert!(set.split_whitespace().count() > 2, "{command}: {set}");
        }
    }
    // The README's experiment reference shows every key an experiment has.
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let reference = readme.split("## Experiment file").nth(1).unwrap();
    let reference = reference
        .split("```toml")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let mut table = String::new();
    let mut listed = Vec::new();
    for line in reference.lines() {
        let line = line.trim_start_matches("# ").trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = format!("{name}.");
        } else if let Some((key, _)) = line.split_once(" = ") {
            listed.push(format!("{table}{}", key.trim()));
        }
    }
    let mut defaults = makemore::config::Experiment::defaults("x");
    defaults.dataset.test_path = Some("t.txt".into());
    let mut every: Vec<String> = serde_json::to_value(&defaults)
        .unwrap()
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(section, value)| match value.as_object() {
            Some(keys) => keys.keys().map(|k| format!("{section}.{k}")).collect(),
            None => vec![section.clone()],
        })
        .collect();
    // Keys left out of config.toml at their defaults serialise there only when set.
    every.extend(
        [
            "dataset.max_len",
            "dataset.long_items",
            "dataset.lowercase",
            "dataset.normalize",
            "sampling.top_p",
            "sampling.min_len",
            "sampling.max_len",
        ]
        .map(String::from),
    );
    for key in every {
        assert!(
            listed.contains(&key),
            "README's experiment reference lacks {key}: {listed:?}"
        );
    }
}

#[test]
fn a_grid_sweep_ends_with_its_best_trial_and_the_report_to_run() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "bigram", "");
    write(
        dir.path(),
        "g.toml",
        "experiment = \"bigram.toml\"\n[set]\n\"dataset.val_fraction\" = 0.2\n[grid]\n\"schedule.learning_rate\" = [1e-3, 1e-1]\n",
    );
    let out = succeeds(&["check", "g.toml"], dir.path());
    assert!(
        stdout(&out).contains("a sweep file (grid), 2 trials"),
        "{}",
        stdout(&out)
    );
    let text = printed(&["sweep", "g.toml"], dir.path());
    // A learning rate of 0.1 trains the bigram's table in 60 steps, 0.001 hardly moves it.
    assert!(text.contains("best trial by val: trial 1 ("), "{text}");
    assert!(text.contains("makemore report runs/g"), "{text}");
}

#[test]
fn a_report_row_that_merges_configurations_says_so() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "mlp", "");
    experiment(dir.path(), "transformer", "");
    for (file, set) in [
        ("mlp.toml", "model.n_embd=8"),
        ("mlp.toml", "model.n_embd=12"),
        ("transformer.toml", "seed=7"),
    ] {
        succeeds(&["run", file, "--set", set], dir.path());
    }
    let text = printed(&["report", "runs", "--by", "model.type"], dir.path());
    let header = text.lines().nth(1).unwrap();
    assert!(!header.split_whitespace().any(|c| c == "type"), "{header}");
    let mlp = text.lines().find(|l| l.starts_with("mlp")).unwrap();
    assert!(mlp.contains("2 configurations"), "{mlp}");
    assert!(
        text.contains("spreads over those configurations, not over seeds"),
        "{text}"
    );
    // Both mlps' sizes, not one of them.
    assert!(
        mlp.split_whitespace().nth(1).unwrap().contains('-'),
        "{mlp}"
    );

    // Unmerged rows name their run; keys a model does not use are blank for it.
    let out = makemore(&["report", "runs"], dir.path(), &[]);
    let text = stdout(&out);
    let header: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    let row = text.lines().find(|l| l.contains("transformer")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    assert!(header.contains(&"run"), "{header:?}");
    assert!(cells.last().unwrap().starts_with("transformer/"), "{row}");
    assert_eq!(cells[column("n_embd")], "8", "{row}");
    assert!(
        !header.contains(&"block_size") || cells[column("block_size")] == "-",
        "{row}"
    );
}
