//! What the rows are ranked by (`--rank-by`: the selection split's loss unless asked otherwise),
//! how each row compares with its group's top row on that figure, and the temperature of each
//! configuration's frontier that best trades new items against plausible ones.

use std::cmp::Ordering;

use super::{Generated, Row, TIE_P};
use crate::rundir::Summary;
use crate::stats::{self, Stat};

/// The figure the rows of a group are ranked by, per run, then over seeds.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    strum::EnumString,
    strum::VariantNames,
    strum::IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// The selection split's loss at the selected checkpoint (val; test where there is no val).
    #[default]
    Val,
    /// The test loss at the selected checkpoint.
    Test,
    /// The share of new samples, the most first.
    New,
    /// The share of samples copied from train, the fewest first.
    Copied,
    /// The share of samples that are held-out items never trained on, the most first.
    HeldOut,
    /// The share of distinct samples, the most first.
    Distinct,
    /// How far the new samples' plausibility is from real held-out items' (|judge gap|).
    Gap,
    /// The total variation distance of the sample lengths from the test lengths.
    Length,
}

impl RankBy {
    /// A run's figure: its loss, or its generation metric at `sampling.temperature`.
    pub fn of(self, summary: &Summary) -> Option<f64> {
        let generated = |name: &str| Some(summary.generation.as_ref()?.figure(name)?.value);
        match self {
            RankBy::Val => summary.selection_loss(),
            RankBy::Test => summary.headline_test_loss(),
            RankBy::Gap => generated("judge_gap").map(f64::abs),
            figure => generated(figure.figure_name()),
        }
    }

    /// The name of its generation figure, as `Metrics::figures` gives it.
    fn figure_name(self) -> &'static str {
        match self {
            RankBy::Gap => "judge_gap",
            RankBy::Length => "length_tv",
            other => other.into(),
        }
    }

    pub fn higher_is_better(self) -> bool {
        matches!(self, RankBy::New | RankBy::HeldOut | RankBy::Distinct)
    }

    /// How the legend names it.
    pub fn describe(self) -> &'static str {
        match self {
            RankBy::Val => "the selection split's loss (val)",
            RankBy::Test => "the test loss, lowest first",
            RankBy::New => "the share of new samples, highest first",
            RankBy::Copied => "the share of samples copied from train, lowest first",
            RankBy::HeldOut => "the held-out hits, highest first",
            RankBy::Distinct => "the share of distinct samples, highest first",
            RankBy::Gap => "the judge gap's size |gap|, smallest first",
            RankBy::Length => "the length TV, smallest first",
        }
    }
}

/// The row's ranked figure over its runs.
pub(super) fn ranked(rank_by: RankBy, summaries: &[&Summary]) -> Option<Stat> {
    let values: Vec<f64> = summaries.iter().filter_map(|s| rank_by.of(s)).collect();
    Stat::of(&values)
}

/// Rows by their ranked figure, the best first, rows without it last; then the trials a search
/// stopped, the later rung first and within a rung by what the search ranked them by.
pub(super) fn by_rank(rank_by: RankBy) -> impl Fn(&Row, &Row) -> Ordering {
    move |a, b| {
        let sign = if rank_by.higher_is_better() {
            -1.0
        } else {
            1.0
        };
        let key = |r: &Row| r.ranked.map_or(f64::INFINITY, |s| sign * s.mean);
        let rung = |r: &Row| r.search.as_ref().map(|t| t.rung);
        let rung_loss = |r: &Row| {
            let loss = r.search.as_ref().and_then(|t| t.rung_loss);
            loss.unwrap_or(f64::INFINITY)
        };
        (key(a).total_cmp(&key(b)))
            .then(rung(b).cmp(&rung(a)))
            .then(rung_loss(a).total_cmp(&rung_loss(b)))
    }
}

/// Welch's test of each row's ranked figure against the top row of its group. A row that
/// merges configurations (`--by`) is no sample of one configuration's seeds: it gets no test.
pub(super) fn compare_with_top(rows: &mut [Row]) {
    // The group and the top row's figure (none where the top row merges configurations).
    let mut top: Option<(usize, Option<Stat>)> = None;
    for row in rows.iter_mut() {
        let Some(stat) = row.ranked else {
            continue;
        };
        let own = (row.configurations == 1).then_some(stat);
        match top {
            Some((group, best)) if group == row.group => {
                if let (Some(stat), Some(best)) = (own, best) {
                    row.p_vs_top = stats::welch_p(&stat, &best);
                    row.tied_with_top = row.p_vs_top.map(|p| p >= TIE_P);
                }
            }
            _ => top = Some((row.group, own)),
        }
    }
}

/// The judge gap (nats per character) within which new samples count as plausible as real
/// held-out items, for the choice of a temperature.
pub const PLAUSIBLE_GAP: f64 = 0.1;

/// The temperature of a frontier with the most new samples among those whose new samples the
/// judge finds at most `PLAUSIBLE_GAP` less likely than the test items (mean over seeds); none
/// where no temperature is that plausible, or the frontier has a single temperature.
pub(super) fn best_temperature(frontier: &[Generated]) -> Option<f64> {
    let mean = |g: &Generated, name: &str| g.figures.get(name).map(|s| s.mean);
    let plausible = frontier
        .iter()
        .filter(|g| mean(g, "judge_gap").is_some_and(|gap| gap <= PLAUSIBLE_GAP));
    let best = plausible.max_by(|a, b| {
        let new = |g| mean(g, "new").unwrap_or(0.0);
        new(a).total_cmp(&new(b))
    });
    best.filter(|_| frontier.len() > 1).map(|g| g.temperature)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn at(temperature: f64, new: f64, gap: f64) -> Generated {
        let stat = |mean| Stat::of(&[mean]).unwrap();
        Generated {
            temperature,
            figures: BTreeMap::from([("new".into(), stat(new)), ("judge_gap".into(), stat(gap))]),
            se: BTreeMap::new(),
        }
    }

    /// The most new among the plausible, not the most new: 1.5 is newer but 0.3 nats off.
    #[test]
    fn the_best_temperature_is_the_newest_plausible_one() {
        let frontier = [at(0.5, 0.6, -0.2), at(1.0, 0.9, 0.05), at(1.5, 0.99, 0.3)];
        assert_eq!(best_temperature(&frontier), Some(1.0));
        assert_eq!(best_temperature(&frontier[2..]), None, "one temperature");
        assert_eq!(
            best_temperature(&[at(1.0, 0.9, 0.2), at(1.5, 1.0, 0.4)]),
            None
        );
    }
}
