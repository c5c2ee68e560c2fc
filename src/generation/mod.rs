//! What a model generates, measured: how many of its samples are new, copied from training,
//! real items it never saw, distinct; how plausible the new ones are to an independent judge
//! (`judge.rs`) beside real held-out items; how their lengths compare. Every figure comes with
//! its standard error.

mod judge;

use std::collections::HashSet;

use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Split};
use crate::stats;
pub use judge::{DISCOUNT, Judge};

/// The names of the figures a `Metrics` holds, in the order reports show them.
pub const FIGURES: [&str; 6] = [
    "new",
    "copied",
    "held_out",
    "distinct",
    "judge_gap",
    "length_tv",
];

/// A figure and its standard error (`None` where there is too little to say).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub value: f64,
    pub se: Option<f64>,
}

/// The generation metrics of `samples` items drawn at one temperature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub temperature: f64,
    pub samples: usize,
    /// Share of samples that are no item of the data file (no split).
    pub new: Figure,
    /// Share equal to a training item.
    pub copied: Figure,
    /// Share equal to a val or test item that is not in train: real items never seen.
    pub held_out: Figure,
    /// Distinct samples per sample.
    pub distinct: Figure,
    /// The judge's nats per character on the new samples (`None` when there are none).
    pub judge_new: Option<Figure>,
    /// The judge's nats per character on the test items (val where there is no test split).
    pub judge_reference: Option<Figure>,
    /// `judge_new − judge_reference`: near 0 reads "as plausible as real held-out items".
    pub judge_gap: Option<Figure>,
    /// Total variation distance between the samples' lengths and the reference items'.
    pub length_tv: Option<Figure>,
}

impl Metrics {
    /// Each figure by its name (`FIGURES`), as the event file and the report name them.
    pub fn figures(&self) -> Vec<(&'static str, Figure)> {
        let figures = [
            Some(self.new),
            Some(self.copied),
            Some(self.held_out),
            Some(self.distinct),
            self.judge_gap,
            self.length_tv,
        ];
        (FIGURES.into_iter().zip(figures))
            .filter_map(|(name, f)| Some((name, f?)))
            .collect()
    }

    /// The figure called `name` (as `figures` names it).
    pub fn figure(&self, name: &str) -> Option<Figure> {
        let mut figures = self.figures().into_iter();
        figures.find(|(n, _)| *n == name).map(|(_, f)| f)
    }

    /// One line for people: every figure ± its standard error, held-out hits per 1,000.
    pub fn line(&self) -> String {
        let share = |f: Figure| match f.se {
            Some(se) => format!("{:.3}±{se:.3}", f.value),
            None => format!("{:.3}", f.value),
        };
        let per_1000 = Figure {
            value: self.held_out.value * 1000.0,
            se: self.held_out.se.map(|se| se * 1000.0),
        };
        let hits = match per_1000.se {
            Some(se) => format!("{:.1}±{se:.1}", per_1000.value),
            None => format!("{:.1}", per_1000.value),
        };
        let gap = self.judge_gap.map_or("-".into(), |g| {
            format!("{:+.3}±{:.3}", g.value, g.se.unwrap_or(0.0))
        });
        let tv = self.length_tv.map_or("-".into(), share);
        format!(
            "generated {} at temperature {}: new {} | copied {} | held-out hits {hits} per 1000 | \
             distinct {} | judge gap {gap} nats/char | length TV {tv}",
            self.samples,
            self.temperature,
            share(self.new),
            share(self.copied),
            share(self.distinct),
        )
    }
}

/// The held-out split the samples are compared with: test, or val where there is no test.
fn reference(data: &Dataset) -> &Split {
    match data.test.is_empty() {
        true => &data.val,
        false => &data.test,
    }
}

/// The metrics at each temperature of what `draw` gives at it (`draw` starts the same stream
/// for every temperature, so that two temperatures differ by the temperature, not by the
/// draws). The judge is fitted once, on the training split, as an n-gram of `judge_order`.
pub fn measure_temperatures(
    temperatures: &[f64],
    data: &Dataset,
    judge_order: usize,
    mut draw: impl FnMut(f64) -> Vec<String>,
) -> Vec<Metrics> {
    let judge = Judge::fit(&data.train.tokens, data.vocab.size(), judge_order);
    temperatures
        .iter()
        .map(|&t| measure(&draw(t), t, data, &judge))
        .collect()
}

/// The metrics of `samples` drawn at `temperature` from a model of `data`.
pub fn measure(samples: &[String], temperature: f64, data: &Dataset, judge: &Judge) -> Metrics {
    let membership = data.membership();
    let marks: Vec<&str> = samples.iter().map(|s| membership.mark(s)).collect();
    let share =
        |f: &dyn Fn(&str) -> bool| binomial(marks.iter().filter(|m| f(m)).count(), marks.len());
    let distinct: HashSet<&String> = samples.iter().collect();
    let new: Vec<&String> = (samples.iter().zip(&marks))
        .filter(|(_, m)| **m == "new")
        .map(|(s, _)| s)
        .collect();
    let reference = reference(data);
    let judged = |items: Vec<Vec<usize>>| judged(judge, &items);
    let judge_new = judged(new.iter().filter_map(|s| data.vocab.encode(s)).collect());
    let judge_reference = judged(reference.tokens.clone());
    let sample_lengths: Vec<usize> = samples.iter().map(|s| s.chars().count()).collect();
    let reference_lengths: Vec<usize> = reference.items.iter().map(|s| s.chars().count()).collect();
    Metrics {
        temperature,
        samples: samples.len(),
        new: share(&|m| m == "new"),
        copied: share(&|m| m == "in-train"),
        held_out: share(&|m| m == "in-val" || m == "in-test"),
        distinct: binomial(distinct.len(), samples.len()),
        judge_gap: judge_new.zip(judge_reference).map(|(a, b)| Figure {
            value: a.value - b.value,
            se: a.se.zip(b.se).map(|(a, b)| a.hypot(b)),
        }),
        judge_new,
        judge_reference,
        length_tv: length_tv(&sample_lengths, &reference_lengths),
    }
}

/// `k` of `n` as a share, with its binomial standard error.
fn binomial(k: usize, n: usize) -> Figure {
    let p = k as f64 / n.max(1) as f64;
    Figure {
        value: p,
        se: (n > 0).then(|| (p * (1.0 - p) / n as f64).sqrt()),
    }
}

/// The judge's nats per character over `items` (the end token counts as one), as the held-out
/// losses are reckoned, with the items as the sampled units for the standard error.
fn judged(judge: &Judge, items: &[Vec<usize>]) -> Option<Figure> {
    if items.is_empty() {
        return None;
    }
    let per_item: Vec<(f64, f64)> = items
        .iter()
        .map(|item| (judge.nats(item), (item.len() + 1) as f64))
        .collect();
    let (nats, chars) = per_item
        .iter()
        .fold((0.0, 0.0), |(n, c), (nats, len)| (n + nats, c + len));
    Some(Figure {
        value: nats / chars,
        se: stats::ratio_standard_error(&per_item),
    })
}

/// Resamples for the length distance's standard error.
const BOOTSTRAP: usize = 200;

/// Total variation distance between the length distributions of `a` and `b`, with a bootstrap
/// standard error (both sides resampled, from a fixed seed: the same lists give the same figure).
fn length_tv(a: &[usize], b: &[usize]) -> Option<Figure> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut resample = |xs: &[usize]| -> Vec<usize> {
        (0..xs.len())
            .map(|_| *xs.choose(&mut rng).expect("not empty"))
            .collect()
    };
    let draws: Vec<f64> = (0..BOOTSTRAP)
        .map(|_| total_variation(&resample(a), &resample(b)))
        .collect();
    let se = stats::Stat::of(&draws).map(|s| s.std);
    Some(Figure {
        value: total_variation(a, b),
        se,
    })
}

/// ½ Σ_l |P_a(l) − P_b(l)| over lengths l.
fn total_variation(a: &[usize], b: &[usize]) -> f64 {
    let longest = a.iter().chain(b).copied().max().unwrap_or(0);
    let histogram = |xs: &[usize]| {
        let mut h = vec![0.0; longest + 1];
        for &x in xs {
            h[x] += 1.0 / xs.len() as f64;
        }
        h
    };
    let (pa, pb) = (histogram(a), histogram(b));
    pa.iter().zip(&pb).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// Hand-written samples against a hand-written split, every figure counted by hand.
    #[test]
    fn the_metrics_of_a_known_sample_list() {
        let data = Dataset::from_splits(
            strings(&["anna", "bob", "cat"]),
            strings(&["dan"]),
            strings(&["eve", "fay"]),
        );
        let judge = Judge::fit(&data.train.tokens, data.vocab.size(), 3);
        let samples = strings(&["anna", "anna", "dan", "eve", "nab"]);
        let m = measure(&samples, 0.8, &data, &judge);
        let share = |value: f64| Figure {
            value,
            se: Some((value * (1.0 - value) / 5.0).sqrt()),
        };
        assert_eq!(m.samples, 5);
        assert_eq!(m.new, share(0.2), "nab");
        assert_eq!(m.copied, share(0.4), "anna twice");
        assert_eq!(m.held_out, share(0.4), "dan (val), eve (test)");
        assert_eq!(m.distinct, share(0.8), "4 of 5");
        // One new sample: its nats over its 3 characters and the end; no spread to speak of.
        let nab = data.vocab.encode("nab").unwrap();
        let judge_new = m.judge_new.unwrap();
        assert_eq!(
            (judge_new.value, judge_new.se),
            (judge.nats(&nab) / 4.0, None)
        );
        let (eve, fay) = (&data.test.tokens[0], &data.test.tokens[1]);
        let reference = (judge.nats(eve) + judge.nats(fay)) / 8.0;
        assert!((m.judge_reference.unwrap().value - reference).abs() < 1e-12);
        let gap = m.judge_gap.unwrap();
        assert!((gap.value - (judge.nats(&nab) / 4.0 - reference)).abs() < 1e-12);
        // Lengths 4 4 3 3 3 against 3 3: ½(|0.6 − 1| + |0.4 − 0|) = 0.4.
        let tv = m.length_tv.unwrap();
        assert!((tv.value - 0.4).abs() < 1e-12, "{tv:?}");
        assert!(tv.se.unwrap() > 0.0);
    }

    /// No new sample: no judge figure for them and no gap; the shares still add to one.
    #[test]
    fn samples_that_are_all_copies() {
        let data = Dataset::from_splits(strings(&["ab", "ba"]), vec![], strings(&["aa"]));
        let judge = Judge::fit(&data.train.tokens, data.vocab.size(), 2);
        let m = measure(&strings(&["ab", "ab"]), 1.0, &data, &judge);
        assert_eq!(
            (m.new.value, m.copied.value, m.distinct.value),
            (0.0, 1.0, 0.5)
        );
        assert_eq!((m.judge_new, m.judge_gap), (None, None));
        assert_eq!(m.length_tv.unwrap().value, 0.0, "every length is 2");
    }
}
