//! The report's view of successive-halving searches: the rung each trial reached, which trials
//! were stopped and which went on to the end, and the training steps the search took against a
//! full grid of the same trials. It reads what the sweep left (`grid.toml`, `trials.csv`, the
//! run directories) through `halving::plan`, so it agrees with the sweep's own account.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Damaged;
use crate::sweep::halving::{self, Halving, Rung};
use crate::sweep::manifest;

/// One search as its sweep directory holds it now.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    pub dir: PathBuf,
    pub eta: usize,
    pub rungs: Vec<RungSummary>,
    /// The best trial of the last rung (its id), once the search is done.
    pub winner: Option<String>,
    /// Training steps every trial has taken so far.
    pub steps: usize,
    /// What training every trial to `max_steps` would take.
    pub full_grid_steps: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RungSummary {
    pub steps: usize,
    pub trials: usize,
    /// Members promoted to the next rung (none before the rung is complete, and at the last).
    pub promoted: usize,
    pub complete: bool,
}

/// Where one trial of a search stands.
#[derive(Debug, Clone, Serialize)]
pub struct TrialRung {
    pub trial: usize,
    /// The last rung it belongs to: it was promoted from every rung before it.
    pub rung: usize,
    pub rung_steps: usize,
    /// Its best validation estimate up to `rung_steps`: what the search ranked it by.
    pub rung_loss: Option<f64>,
    pub fate: Fate,
    #[serde(skip)]
    pub run: PathBuf,
}

/// What became of a trial at its last rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Fate {
    /// The best of the last rung, the search done.
    Winner,
    /// Trained to `max_steps`, not the best.
    Finished,
    /// Not promoted: its run stays paused at the rung's steps.
    Stopped,
    /// Reached the rung's steps; the rung waits for its other members.
    Waiting,
    /// Still to reach the rung's steps.
    Training,
    Failed,
}

impl Fate {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

impl Search {
    /// Its rungs, winner and cost, in two lines.
    pub fn describe(&self) -> String {
        let rungs: Vec<String> = (self.rungs.iter().enumerate())
            .map(|(r, rung)| {
                let promoted = match rung.promoted {
                    0 => String::new(),
                    n => format!(", {n} promoted"),
                };
                let running = if rung.complete { "" } else { " (running)" };
                format!(
                    "rung {r}: {} trials to {} steps{promoted}{running}",
                    rung.trials, rung.steps
                )
            })
            .collect();
        let winner = self
            .winner
            .as_ref()
            .map_or(String::new(), |id| format!("; winner {id}"));
        format!(
            "search {} (successive halving, eta {}): {}{winner}\n  {}\n",
            self.dir.display(),
            self.eta,
            rungs.join("; "),
            halving::compute_line(self.steps, self.full_grid_steps),
        )
    }
}

/// The searches below `dirs`, and each of their trials by its run directory.
pub type Searches = (Vec<Search>, BTreeMap<PathBuf, TrialRung>);

pub fn find(dirs: &[PathBuf], damaged: &mut Vec<Damaged>) -> Searches {
    let mut sweeps = Vec::new();
    for dir in dirs {
        find_sweeps(dir, &mut sweeps);
    }
    let (mut searches, mut trials) = (Vec::new(), BTreeMap::new());
    for dir in sweeps {
        match manifest::recorded(&dir) {
            None => {}
            Some(Err(problem)) => damaged.push(Damaged { dir, problem }),
            Some(Ok(recorded)) => {
                let rungs = halving::plan(&recorded.halving, &recorded.ids, &dir);
                for trial in trial_rungs(&recorded.halving, &rungs) {
                    let run = dir.join(&recorded.ids[trial.trial]);
                    trials.insert(run.clone(), TrialRung { run, ..trial });
                }
                searches.push(summary(dir, &recorded.halving, &recorded.ids, &rungs));
            }
        }
    }
    (searches, trials)
}

/// Directories holding a `grid.toml`, below `dir` (itself included); sweeps do not nest, and
/// run directories hold none.
fn find_sweeps(dir: &Path, found: &mut Vec<PathBuf>) {
    if dir.join("grid.toml").exists() {
        found.push(dir.to_path_buf());
        return;
    }
    if dir.join("summary.json").exists() {
        return;
    }
    for child in super::read::subdirectories(dir) {
        find_sweeps(&child, found);
    }
}

fn summary(dir: PathBuf, h: &Halving, ids: &[String], rungs: &[Rung]) -> Search {
    let last = rungs.len().saturating_sub(1);
    Search {
        eta: h.eta,
        rungs: rungs
            .iter()
            .enumerate()
            .map(|(r, rung)| RungSummary {
                steps: rung.steps,
                trials: rung.members.len(),
                promoted: match rung.complete && r < last {
                    true => rungs[r + 1].members.len(),
                    false => 0,
                },
                complete: rung.complete,
            })
            .collect(),
        winner: halving::winner(h, rungs).map(|i| ids[i].clone()),
        steps: halving::spent(ids, &dir),
        full_grid_steps: ids.len() * h.max_steps,
        dir,
    }
}

/// Each trial at the last rung it belongs to (its run directory left to the caller).
fn trial_rungs(h: &Halving, rungs: &[Rung]) -> Vec<TrialRung> {
    let winner = halving::winner(h, rungs);
    let mut at = BTreeMap::new();
    for (r, rung) in rungs.iter().enumerate() {
        for (&trial, &loss) in rung.members.iter().zip(&rung.scores) {
            let fate = match () {
                _ if winner == Some(trial) => Fate::Winner,
                _ if rung.pending.contains(&trial) => Fate::Training,
                _ if loss.is_none() => Fate::Failed,
                _ if !rung.complete => Fate::Waiting,
                _ if rung.steps == h.max_steps => Fate::Finished,
                _ => Fate::Stopped,
            };
            let trial_rung = TrialRung {
                trial,
                rung: r,
                rung_steps: rung.steps,
                rung_loss: loss,
                fate,
                run: PathBuf::new(),
            };
            // A later rung replaces an earlier one: the trial was promoted.
            at.insert(trial, trial_rung);
        }
    }
    at.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rung(steps: usize, members: &[usize], scores: &[Option<f64>], pending: &[usize]) -> Rung {
        Rung {
            steps,
            members: members.to_vec(),
            scores: scores.to_vec(),
            pending: pending.to_vec(),
            complete: pending.is_empty(),
        }
    }

    /// Four trials, eta 2: trial 2 failed in rung 0, trials 1 and 3 went on, trial 3 won.
    #[test]
    fn each_trial_at_its_last_rung_with_its_fate() {
        let h = Halving::new(2, 10, 20).unwrap();
        let rungs = [
            rung(
                10,
                &[0, 1, 2, 3],
                &[Some(2.5), Some(2.1), None, Some(2.0)],
                &[],
            ),
            rung(20, &[3, 1], &[Some(1.9), Some(1.95)], &[]),
        ];
        let fates: Vec<(usize, usize, Fate)> = trial_rungs(&h, &rungs)
            .iter()
            .map(|t| (t.trial, t.rung, t.fate))
            .collect();
        assert_eq!(
            fates,
            [
                (0, 0, Fate::Stopped),
                (1, 1, Fate::Finished),
                (2, 0, Fate::Failed),
                (3, 1, Fate::Winner)
            ]
        );
        let running = [rung(
            10,
            &[0, 1, 2, 3],
            &[Some(2.5), None, None, None],
            &[1, 2],
        )];
        let fates: Vec<Fate> = trial_rungs(&h, &running).iter().map(|t| t.fate).collect();
        assert_eq!(
            fates,
            [Fate::Waiting, Fate::Training, Fate::Training, Fate::Failed]
        );
    }
}
