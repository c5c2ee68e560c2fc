//! Successive halving: every trial trains to `min_steps`; the best `1/eta` of them by the
//! selection split's loss (validation where there is one) go on to `min_steps × eta`, and so on
//! to `max_steps`. Each trial's schedule is `max_steps` long, so a promoted trial goes on from
//! its own checkpoint (`run --resume --until`) to the losses of a run that never paused.
//!
//! Where the search stands is a function of the run directories alone: a rung is complete when
//! every member has reached its steps (or failed), and its promotions are the members ranked by
//! their best estimate up to those steps (read from metrics.csv, which resuming never rewrites
//! below the checkpoint), ties to the lower index. So any worker computes the same plan, and an
//! interrupted search started again goes on where it was.

use std::path::Path;

use crate::rundir::{self, Status, metrics};

/// `[search] method = "halving"`'s settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Halving {
    pub eta: usize,
    pub min_steps: usize,
    pub max_steps: usize,
}

impl Halving {
    pub fn new(eta: usize, min_steps: usize, max_steps: usize) -> Result<Self, String> {
        if eta < 2 {
            return Err(format!("eta must be at least 2, got {eta}"));
        }
        if min_steps == 0 || max_steps < min_steps {
            return Err(format!(
                "min_steps must be ≥ 1 and max_steps ≥ min_steps, got {min_steps} and {max_steps}"
            ));
        }
        Ok(Halving {
            eta,
            min_steps,
            max_steps,
        })
    }

    /// The steps each rung trains its members to: min_steps × eta^r below max_steps, then
    /// max_steps.
    pub fn rung_steps(&self) -> Vec<usize> {
        let mut steps = Vec::new();
        let mut s = self.min_steps;
        while s < self.max_steps {
            steps.push(s);
            s = s.saturating_mul(self.eta);
        }
        steps.push(self.max_steps);
        steps
    }
}

/// One rung of the search as it stands.
#[derive(Debug, Clone)]
pub struct Rung {
    pub steps: usize,
    /// Trial indices, in the order they were promoted (best first; all trials in rung 0).
    pub members: Vec<usize>,
    /// Each member's best estimate up to `steps`, where it has one.
    pub scores: Vec<Option<f64>>,
    /// The members still to reach `steps`; none when the rung is complete.
    pub pending: Vec<usize>,
    /// Every member reached `steps` (or finished earlier, stopped early) or failed.
    pub complete: bool,
}

/// The rungs so far of the trials `ids` (in index order) in the sweep directory `dir`: every
/// complete one and the first incomplete one (the search is done when the last rung, at
/// max_steps, is complete).
pub fn plan(halving: &Halving, ids: &[String], dir: &Path) -> Vec<Rung> {
    let mut members: Vec<usize> = (0..ids.len()).collect();
    let mut rungs = Vec::new();
    for steps in halving.rung_steps() {
        let states: Vec<AtRung> = members
            .iter()
            .map(|&i| at_rung(&dir.join(&ids[i]), steps))
            .collect();
        let pending: Vec<usize> = members
            .iter()
            .zip(&states)
            .filter(|(_, s)| matches!(s, AtRung::Short))
            .map(|(&i, _)| i)
            .collect();
        let rung = Rung {
            steps,
            members: members.clone(),
            scores: states.iter().map(|s| s.score()).collect(),
            complete: pending.is_empty(),
            pending,
        };
        let complete = rung.complete;
        let next = promoted(&rung, halving.eta);
        rungs.push(rung);
        if !complete || next.is_empty() {
            break;
        }
        members = next;
    }
    rungs
}

/// Whether the plan's last rung is the one at max_steps, complete.
pub fn done(halving: &Halving, rungs: &[Rung]) -> bool {
    rungs
        .last()
        .is_some_and(|r| r.complete && (r.steps == halving.max_steps || promoted_none(r)))
}

/// The best trial of the last rung, once the search is done.
pub fn winner(halving: &Halving, rungs: &[Rung]) -> Option<usize> {
    let last = rungs.last().filter(|_| done(halving, rungs))?;
    promoted(last, usize::MAX).first().copied()
}

/// The training steps the trials `ids` have taken so far.
pub fn spent(ids: &[String], dir: &Path) -> usize {
    ids.iter()
        .filter_map(|id| rundir::read_summary(&dir.join(id)).ok())
        .map(|s| s.step)
        .sum()
}

fn promoted_none(rung: &Rung) -> bool {
    rung.scores.iter().all(Option::is_none)
}

/// The best ⌊n/eta⌋ (at least one) of a complete rung's members that have a score.
pub fn promoted(rung: &Rung, eta: usize) -> Vec<usize> {
    let mut ranked: Vec<(f64, usize)> = rung
        .members
        .iter()
        .zip(&rung.scores)
        .filter_map(|(&i, score)| score.map(|s| (s, i)))
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let keep = (rung.members.len() / eta).max(1).min(ranked.len());
    ranked.into_iter().take(keep).map(|(_, i)| i).collect()
}

/// "compute: S training steps, against F for every trial to the end (P%)": what the sweep and
/// the report say of a search's cost.
pub fn compute_line(spent: usize, full: usize) -> String {
    let share = 100.0 * spent as f64 / full.max(1) as f64;
    format!(
        "compute: {spent} training steps, against {full} for every trial to the end ({share:.0}%)"
    )
}

/// Where a trial's run stands against a rung's steps.
enum AtRung {
    /// Still to reach the steps.
    Short,
    /// Reached the steps (or finished before them), with its best estimate up to them.
    There(Option<f64>),
    Failed,
}

impl AtRung {
    fn score(&self) -> Option<f64> {
        match self {
            AtRung::There(score) => *score,
            _ => None,
        }
    }
}

/// The run's best estimate of `split` (its selection split) up to `steps`, its weight
/// average's included; none where its metrics.csv does not read.
fn best_estimate(run: &Path, split: &str, steps: usize) -> Option<f64> {
    let rows = metrics::read(run).ok()?;
    metrics::best_selectable(&rows, split, steps)
}

fn at_rung(run: &Path, steps: usize) -> AtRung {
    let Ok(summary) = rundir::read_summary(run) else {
        return AtRung::Short;
    };
    let split = summary.selected_on().name();
    match summary.status {
        Status::Failed => AtRung::Failed,
        Status::Done => AtRung::There(best_estimate(run, split, steps)),
        _ if summary.step >= steps => AtRung::There(best_estimate(run, split, steps)),
        _ => AtRung::Short,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_multiply_by_eta_up_to_max_steps() {
        let h = Halving::new(3, 20, 180).unwrap();
        assert_eq!(h.rung_steps(), [20, 60, 180]);
        assert_eq!(
            Halving::new(2, 100, 300).unwrap().rung_steps(),
            [100, 200, 300]
        );
        assert_eq!(Halving::new(2, 50, 50).unwrap().rung_steps(), [50]);
        assert!(Halving::new(1, 1, 2).is_err());
        assert!(Halving::new(2, 0, 2).is_err());
        assert!(Halving::new(2, 3, 2).is_err());
    }

    /// The best third by score, ties to the lower index; members without a score (failed) are
    /// never promoted.
    #[test]
    fn promotion_keeps_the_best_fraction() {
        let rung = Rung {
            steps: 10,
            members: vec![0, 1, 2, 3, 4, 5, 6, 7, 8],
            scores: vec![
                Some(2.0),
                Some(1.5),
                None,
                Some(1.5),
                Some(3.0),
                Some(1.2),
                Some(2.5),
                None,
                Some(2.2),
            ],
            pending: Vec::new(),
            complete: true,
        };
        assert_eq!(promoted(&rung, 3), [5, 1, 3]);
        assert_eq!(promoted(&rung, 9), [5]);
        let failed = Rung {
            scores: vec![None; 9],
            ..rung
        };
        assert!(promoted(&failed, 3).is_empty());
    }
}
