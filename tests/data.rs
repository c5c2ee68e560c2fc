//! Data: makemore's reading, splitting and encoding rules, and clear errors for bad files.

mod common;

use makemore::config::{DatasetConfig, Experiment, LongItems};
use makemore::data::{Dataset, IGNORE, batch};
use makemore::error::Error;

fn config(path: std::path::PathBuf) -> DatasetConfig {
    DatasetConfig {
        path,
        ..Experiment::defaults("t").dataset
    }
}

fn items(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "item{}\n",
                char::from(b'a' + (i % 26) as u8)
                    .to_string()
                    .repeat(1 + i / 26)
            )
        })
        .collect()
}

#[test]
fn split_sizes_follow_makemore_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "d.txt", &items(200));
    let data = Dataset::load(&config(path.clone())).unwrap();
    // min(test_size = 1000, 0.1 × 200) = 20
    assert_eq!(
        (data.train.len(), data.val.len(), data.test.len()),
        (180, 0, 20)
    );
    let data = Dataset::load(&DatasetConfig {
        test_size: 5,
        val_fraction: 0.1,
        ..config(path)
    })
    .unwrap();
    assert_eq!(
        (data.train.len(), data.val.len(), data.test.len()),
        (175, 20, 5)
    );
}

#[test]
fn split_depends_on_split_seed_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "d.txt", &items(100));
    let a = Dataset::load(&config(path.clone())).unwrap();
    let b = Dataset::load(&config(path.clone())).unwrap();
    assert_eq!(a.test.items, b.test.items);
    assert_eq!(a.split_hash, b.split_hash);
    let c = Dataset::load(&DatasetConfig {
        split_seed: 43,
        ..config(path)
    })
    .unwrap();
    assert_ne!(a.test.items, c.test.items);
    assert_ne!(a.split_hash, c.split_hash);
    assert_eq!(a.data_hash, c.data_hash);
}

#[test]
fn the_training_seed_does_not_move_the_split() {
    let dir = tempfile::tempdir().unwrap();
    common::experiment(dir.path(), "bigram", "");
    let runs = dir.path().join("runs");
    let runs_arg = runs.to_str().unwrap();
    for seed in ["1", "2"] {
        let out = common::makemore(
            &[
                "run",
                "bigram.toml",
                "--runs",
                runs_arg,
                "--set",
                &format!("seed={seed}"),
                "--set",
                "name=s",
            ],
            dir.path(),
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    }
    let hashes: Vec<String> = common::run_dirs(&runs.join("s"))
        .into_iter()
        .map(|run| makemore::rundir::read_summary(&run).unwrap().split_hash)
        .collect();
    assert_eq!(hashes.len(), 2);
    assert_eq!(hashes[0], hashes[1]);
}

#[test]
fn strips_drops_blanks_and_dedups() {
    let dir = tempfile::tempdir().unwrap();
    let text = "  anna \n\nbob\n\t\nanna\ncarl\n".to_string() + &items(20);
    let path = common::write(dir.path(), "d.txt", &text);
    let data = Dataset::load(&DatasetConfig {
        test_size: 1,
        ..config(path.clone())
    })
    .unwrap();
    assert_eq!(data.train.len() + data.test.len(), 24);
    let all: Vec<&String> = data.train.items.iter().chain(&data.test.items).collect();
    assert!(all.iter().all(|i| i.trim() == i.as_str() && !i.is_empty()));
    let data = Dataset::load(&DatasetConfig {
        test_size: 1,
        dedup: true,
        ..config(path)
    })
    .unwrap();
    assert_eq!(data.train.len() + data.test.len(), 23);
}

#[test]
fn max_len_drops_or_cuts_longer_items() {
    let dir = tempfile::tempdir().unwrap();
    let short: String = ('a'..='t').map(|c| format!("{c}{c}\n")).collect();
    let path = common::write(dir.path(), "d.txt", &format!("{short}abcd\nabcdef\nxyz\n"));
    let load = |long_items| {
        let data = Dataset::load(&DatasetConfig {
            test_size: 1,
            max_len: 3,
            long_items,
            ..config(path.clone())
        })
        .unwrap();
        let mut all: Vec<String> = data
            .train
            .items
            .iter()
            .chain(&data.test.items)
            .cloned()
            .collect();
        all.retain(|i| i.len() > 2);
        all.sort();
        (all, data.long_items, data.seq_len)
    };
    let (kept, long, seq_len) = load(LongItems::Drop);
    assert_eq!((kept, long, seq_len), (vec!["xyz".into()], 2, 4));
    let (kept, long, seq_len) = load(LongItems::Truncate);
    let expected: Vec<String> = ["abc", "abc", "xyz"].map(String::from).into();
    assert_eq!((kept, long, seq_len), (expected, 2, 4));
}

#[test]
fn unicode_vocabulary_is_by_character() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(
        dir.path(),
        "d.txt",
        "zoë\nstraße\n名前\nabc\nzoë\nétoile\nx\ny\nz\nw\n",
    );
    let data = Dataset::load(&DatasetConfig {
        test_size: 1,
        ..config(path)
    })
    .unwrap();
    let chars = data.vocab.chars();
    assert!(chars.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
    for c in ['ë', 'ß', '名', '前', 'é'] {
        assert!(chars.contains(&c), "{c}");
    }
    assert_eq!(data.vocab.size(), chars.len() + 1);
    assert_eq!(data.seq_len, "straße".chars().count() + 1);
    let tokens = data.vocab.encode("straße").unwrap();
    assert_eq!(data.vocab.decode(&tokens), "straße");
}

#[test]
fn batches_are_start_item_stop_then_ignored() {
    type B = burn::backend::Flex;
    let (x, y) = batch::<B>(&[&[3, 1], &[2]], 4, &Default::default());
    let x: Vec<i32> = x.into_data().convert::<i32>().to_vec().unwrap();
    let y: Vec<i32> = y.into_data().convert::<i32>().to_vec().unwrap();
    assert_eq!(x, vec![0, 3, 1, 0, 0, 2, 0, 0]);
    assert_eq!(y, vec![3, 1, 0, IGNORE, 2, 0, IGNORE, IGNORE]);
}

fn input_error(path: std::path::PathBuf) -> String {
    match Dataset::load(&config(path)) {
        Err(Error::Input(message)) => message,
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn bad_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = input_error(dir.path().join("missing.txt"));
    assert!(
        missing.contains("missing.txt") && missing.contains("cannot read"),
        "{missing}"
    );
    assert!(input_error(dir.path().to_path_buf()).contains("is a directory"));
    assert!(input_error(common::write(dir.path(), "empty.txt", "")).contains("holds no items"));
    assert!(
        input_error(common::write(dir.path(), "blank.txt", "\n  \n\t\n"))
            .contains("holds no items")
    );
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"anna\nbob\nca\xffrl\n").unwrap();
    let message = input_error(bad);
    assert!(
        message.contains("bad.txt:3") && message.contains("UTF-8"),
        "{message}"
    );
    let tiny = input_error(common::write(dir.path(), "one.txt", "anna\n"));
    assert!(tiny.contains("0 test items"), "{tiny}");
}

#[test]
fn test_path_replaces_the_random_split() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "d.txt", &items(50));
    let held_out = common::write(dir.path(), "t.txt", "zed\nqux\n");
    let data = Dataset::load(&DatasetConfig {
        test_path: Some(held_out),
        ..config(path)
    })
    .unwrap();
    assert_eq!(data.train.len(), 50);
    assert_eq!(data.test.items, vec!["zed", "qux"]);
}

#[test]
fn example_rows_hold_nothing_past_their_target() {
    type B = burn::backend::Flex;
    let (x, y) = makemore::data::example_batch::<B>(
        &[(&[3, 1, 4], 2), (&[3, 1, 4], 3), (&[5], 0)],
        5,
        &Default::default(),
    );
    let x: Vec<i32> = x.into_data().convert::<i32>().to_vec().unwrap();
    let y: Vec<i32> = y.into_data().convert::<i32>().to_vec().unwrap();
    let i = IGNORE;
    assert_eq!(
        x,
        vec![
            0, 3, 1, 0, 0, /**/ 0, 3, 1, 4, 0, /**/ 0, 0, 0, 0, 0
        ]
    );
    assert_eq!(
        y,
        vec![
            i, i, 4, i, i, /**/ i, i, i, 0, i, /**/ 5, i, i, i, i
        ]
    );
}

#[test]
fn examples_cover_every_position_of_every_item() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "d.txt", &items(30));
    let data = Dataset::load(&config(path)).unwrap();
    let mut batcher = makemore::data::Batcher::new(1);
    let mut seen = std::collections::HashSet::new();
    for (tokens, position) in batcher.next_examples(&data.train, 20_000) {
        assert!(position <= tokens.len());
        seen.insert((tokens.as_ptr(), position));
    }
    let total: usize = data.train.tokens.iter().map(|t| t.len() + 1).sum();
    assert_eq!(seen.len(), total);
}

#[test]
fn a_validation_split_leaves_the_test_split_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "d.txt", &items(300));
    let without = Dataset::load(&config(path.clone())).unwrap();
    for val_fraction in [0.05, 0.1, 0.3] {
        let with = Dataset::load(&DatasetConfig {
            val_fraction,
            ..config(path.clone())
        })
        .unwrap();
        assert_eq!(
            with.test.items, without.test.items,
            "val_fraction {val_fraction}"
        );
        // Val comes out of what was train, nothing else.
        let mut train: Vec<&String> = with.train.items.iter().chain(&with.val.items).collect();
        let mut before: Vec<&String> = without.train.items.iter().collect();
        train.sort();
        before.sort();
        assert_eq!(train, before);
    }
}
