//! Grouping runs: by data and split (only runs of one group are ranked together), then by
//! configuration (every key that varies, or the `--by` keys), each row's figures over its
//! finished runs, a configuration hash and seed counted once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::rank::{self, RankBy};
use super::read::Run;
use super::{Fate, Generated, Group, Row, TrialRung};
use crate::generation::Metrics;
use crate::rundir::{Status, Summary};
use crate::stats::Stat;

/// Keys that never tell configurations apart: `seed` is what gets aggregated, the paths and names
/// name things (the data itself is identified by its hash), and the device and thread count do
/// not change the numbers (as for the configuration hash).
pub(super) const NOT_CONFIGURATION: [&str; 6] = [
    "seed",
    "name",
    "dataset.path",
    "dataset.test_path",
    "backend.device",
    "backend.threads",
];

/// Configuration keys whose values differ between runs of one group (between groups, the
/// data or the split differ anyway and the groups are shown apart).
pub(super) fn varying_keys(runs: &[Run], groups: &[Group]) -> Vec<String> {
    let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.config.keys()).collect();
    let varies = |key: &str| {
        groups.iter().any(|g| {
            let values: BTreeSet<Option<&String>> = runs
                .iter()
                .filter(|r| {
                    r.summary.data_hash == g.data_hash && r.summary.split_hash == g.split_hash
                })
                .map(|r| r.config.get(key))
                .collect();
            values.len() > 1
        })
    };
    keys.into_iter()
        .filter(|k| !NOT_CONFIGURATION.contains(&k.as_str()) && varies(k))
        .cloned()
        .collect()
}

pub(super) fn groups(runs: &[Run]) -> Vec<Group> {
    let mut first: BTreeMap<(&str, &str), &Summary> = BTreeMap::new();
    for run in runs {
        let key = (
            run.summary.data_hash.as_str(),
            run.summary.split_hash.as_str(),
        );
        first.entry(key).or_insert(&run.summary);
    }
    first
        .into_iter()
        .enumerate()
        .map(|(i, ((data, split), summary))| Group {
            id: i + 1,
            data_hash: data.into(),
            split_hash: split.into(),
            selected_on: summary.selected_on(),
            overlap: runs
                .iter()
                .filter(|r| r.summary.data_hash == data && r.summary.split_hash == split)
                .find_map(|r| r.summary.overlap),
        })
        .collect()
}

pub(super) fn aggregate(
    runs: &[Run],
    columns: &[String],
    groups: &[Group],
    trials: &BTreeMap<PathBuf, TrialRung>,
    rank_by: RankBy,
) -> Vec<Row> {
    let group_of = |run: &Run| {
        groups
            .iter()
            .find(|g| {
                g.data_hash == run.summary.data_hash && g.split_hash == run.summary.split_hash
            })
            .map_or(0, |g| g.id)
    };
    // The columns are every key that varies (or the --by keys): runs that agree on them agree
    // on everything but the seed (or on what --by asked for) and are aggregated.
    let mut configurations: BTreeMap<(usize, Vec<String>), Vec<&Run>> = BTreeMap::new();
    for run in runs {
        let key = columns
            .iter()
            .map(|c| run.config.get(c).cloned().unwrap_or_default())
            .collect();
        configurations
            .entry((group_of(run), key))
            .or_default()
            .push(run);
    }
    configurations
        .into_iter()
        .map(|((group, _), runs)| row(group, columns, runs, trials, rank_by))
        .collect()
}

/// The finished runs that count, newest first within a configuration hash (which includes the
/// seed), and the older ones they replace.
pub(super) fn counted_and_repeats(runs: &[&Run]) -> (Vec<Run>, Vec<PathBuf>) {
    let mut done: Vec<&Run> = runs
        .iter()
        .copied()
        .filter(|r| r.summary.status == Status::Done)
        .collect();
    done.sort_by(|a, b| (&b.summary.started_at, &b.dir).cmp(&(&a.summary.started_at, &a.dir)));
    let mut seen = BTreeSet::new();
    let (mut counted, mut repeats) = (Vec::new(), Vec::new());
    for run in done {
        match seen.insert(run.summary.config_hash.as_str()) {
            true => counted.push(run.clone()),
            false => repeats.push(run.dir.clone()),
        }
    }
    counted.sort_by(|a, b| (a.config.get("seed"), &a.dir).cmp(&(b.config.get("seed"), &b.dir)));
    repeats.sort();
    (counted, repeats)
}

pub(super) fn row(
    group: usize,
    columns: &[String],
    runs: Vec<&Run>,
    trials: &BTreeMap<PathBuf, TrialRung>,
    rank_by: RankBy,
) -> Row {
    let (counted, repeats) = counted_and_repeats(&runs);
    let summaries: Vec<&Summary> = counted.iter().map(|r| &r.summary).collect();
    let (generation, frontier) = generated(&summaries);
    let search = runs
        .iter()
        .filter_map(|r| trials.get(&r.dir))
        .max_by_key(|t| t.rung)
        .cloned();
    let not_done = not_done(&runs, trials);
    let stat = |f: fn(&Summary) -> Option<f64>| {
        let values: Vec<f64> = counted.iter().filter_map(|r| f(&r.summary)).collect();
        Stat::of(&values)
    };
    let test = stat(Summary::headline_test_loss);
    let described = counted.first().unwrap_or(runs[0]);
    let configurations = configurations(&counted);
    let params = counted.iter().map(|r| r.summary.params);
    let mean_of = |f: fn(&Summary) -> Option<f64>| stat(f).map(|s| s.mean);
    Row {
        group,
        keys: columns
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    described.config.get(c).cloned().unwrap_or_default(),
                )
            })
            .collect(),
        model_type: described.summary.model_type.clone(),
        params: params.clone().min().unwrap_or(described.summary.params),
        params_max: params.max().unwrap_or(described.summary.params),
        configurations: configurations.max(1),
        // A stopped trial's steps are its rung's.
        steps: (counted.iter().map(|r| r.summary.step).max())
            .or(search.as_ref().map(|t| t.rung_steps)),
        runs: counted.iter().map(|r| r.dir.clone()).collect(),
        seeds: counted
            .iter()
            .map(|r| r.config.get("seed").cloned().unwrap_or_default())
            .collect(),
        selection_loss: stat(Summary::selection_loss),
        ranked: rank::ranked(rank_by, &summaries),
        best_temperature: rank::best_temperature(&frontier),
        generation,
        frontier,
        test_loss: test,
        test_loss_se: match counted.as_slice() {
            [only] => only.summary.test_loss_se,
            _ => None,
        },
        test_loss_last: stat(|s| s.test_loss_last),
        final_train_loss: stat(|s| s.final_train_loss),
        p_vs_top: None,
        tied_with_top: None,
        test_logprob: test.map(|s| -s.mean),
        bits_per_char: test.map(|s| s.mean / std::f64::consts::LN_2),
        tokens_per_s: mean_of(|s| s.tokens_per_s),
        wall_s: mean_of(|s| Some(s.wall_s)),
        status: status_text(counted.len(), &not_done, repeats.len(), configurations),
        not_done,
        repeats,
        search,
        ensemble: None,
    }
}

/// The runs' generation metrics at `sampling.temperature`, and their frontiers, temperature by
/// temperature. Where `--by` merged runs sampled at different temperatures, the headline is the
/// temperature most of them sampled at.
fn generated(summaries: &[&Summary]) -> (Option<Generated>, Vec<Generated>) {
    let headline = summaries.iter().filter_map(|s| s.generation.as_ref());
    let headlines = by_temperature(headline);
    let generation = (headlines.into_iter().rev()).max_by_key(|(n, _)| *n);
    let frontier = by_temperature(summaries.iter().flat_map(|s| &s.frontier));
    (
        generation.map(|(_, g)| g),
        frontier.into_iter().map(|(_, g)| g).collect(),
    )
}

/// The metrics over runs at each temperature, coolest first, with how many runs measured it.
fn by_temperature<'a>(metrics: impl Iterator<Item = &'a Metrics>) -> Vec<(usize, Generated)> {
    let mut at: BTreeMap<i64, Vec<&Metrics>> = BTreeMap::new();
    for m in metrics {
        // Temperatures are written by people to a few decimals: equal to 1e-9 is equal.
        at.entry((m.temperature * 1e9).round() as i64)
            .or_default()
            .push(m);
    }
    at.into_values()
        .map(|ms| (ms.len(), over_runs(&ms)))
        .collect()
}

/// One temperature's figures over the runs that measured it.
fn over_runs(metrics: &[&Metrics]) -> Generated {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (name, figure) in metrics.iter().flat_map(|m| m.figures()) {
        values.entry(name.into()).or_default().push(figure.value);
    }
    let se = match metrics {
        [only] => (only.figures().into_iter())
            .filter_map(|(name, f)| Some((name.to_string(), f.se?)))
            .collect(),
        _ => BTreeMap::new(),
    };
    Generated {
        temperature: metrics[0].temperature,
        figures: (values.into_iter())
            .filter_map(|(name, v)| Some((name, Stat::of(&v)?)))
            .collect(),
        se,
    }
}

/// The runs that did not finish, counted by status.
fn not_done(runs: &[&Run], trials: &BTreeMap<PathBuf, TrialRung>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::<String, usize>::new();
    for run in runs.iter().filter(|r| r.summary.status != Status::Done) {
        // A search's trial paused at its rung was stopped, not interrupted.
        let status = match trials.get(&run.dir).map(|t| t.fate) {
            Some(Fate::Stopped) => "stopped",
            _ => run.summary.status.name(),
        };
        *counts.entry(status.to_string()).or_default() += 1;
    }
    counts
}

/// How many configurations (seed aside) the counted runs hold.
fn configurations(counted: &[Run]) -> usize {
    let configurations: BTreeSet<Vec<(&String, &String)>> = counted
        .iter()
        .map(|r| {
            (r.config.iter())
                .filter(|(k, _)| !NOT_CONFIGURATION.contains(&k.as_str()))
                .collect()
        })
        .collect();
    configurations.len()
}

/// "3 done", then the unfinished runs by status, the repeats and the configurations a `--by` row
/// merged: "2 done; failed 1; 1 repeat; 2 configurations".
pub(super) fn status_text(
    done: usize,
    not_done: &BTreeMap<String, usize>,
    repeats: usize,
    configurations: usize,
) -> String {
    let mut parts = vec![format!("{done} done")];
    if !not_done.is_empty() {
        let others: Vec<String> = not_done.iter().map(|(s, n)| format!("{s} {n}")).collect();
        parts.push(others.join(", "));
    }
    if repeats > 0 {
        parts.push(format!(
            "{repeats} repeat{}",
            if repeats > 1 { "s" } else { "" }
        ));
    }
    if configurations > 1 {
        parts.push(format!("{configurations} configurations"));
    }
    parts.join("; ")
}
