//! What a sweep tells the person running it, as it goes: the facts, which the binary prints.

use std::path::{Path, PathBuf};

use super::Trial;
use crate::data::SplitName;

/// What a sweep tells the person running it as it goes; the binary prints it.
pub enum Event<'a> {
    /// `--dry-run`: the grid's size, then each trial with what a sweep would do with it.
    Plan {
        name: &'a str,
        trials: usize,
        dir: &'a Path,
    },
    Planned {
        trial: &'a Trial,
        action: &'static str,
    },
    /// Something the person running the sweep must not miss (a search that ranks on test).
    Warning(String),
    /// `--emit list`: the command that runs one trial.
    Command(String),
    /// `--emit slurm`: the script written.
    Script(PathBuf),
    /// What this worker does with the trial it was given (`--index`).
    Trial {
        trial: &'a Trial,
        handling: Handling,
    },
    /// The start of a sweep that runs its trials as child processes.
    Start {
        name: &'a str,
        trials: usize,
        done_before: usize,
        to_go: usize,
        jobs: usize,
        threads: usize,
    },
    /// A halving search's current rung, each time another of its members reaches its steps.
    Rung {
        rung: usize,
        steps: usize,
        reached: usize,
        members: usize,
        elapsed_s: f64,
    },
    /// A search's worker process ended (it found the search done, or was stopped).
    WorkerEnded { index: usize, how: &'static str },
    /// A trial's process ended: how, and where the sweep stands.
    Ended {
        trial: &'a Trial,
        how: &'static str,
        elapsed_s: f64,
        tally: Tally,
        eta_s: Option<f64>,
    },
    /// The end of a halving search: each rung with its members' scores, its winner, and what
    /// it cost in training steps against every trial trained to the end.
    Rungs {
        rungs: Vec<RungShown<'a>>,
        winner: Option<&'a Trial>,
        spent: usize,
        full: usize,
        /// The trials that failed, with why.
        failed: &'a [(&'a Trial, String)],
    },
    /// The end of a sweep: its trials done, why each failed one failed, and the finished trial
    /// with the lowest selection loss.
    Finished {
        name: &'a str,
        dir: &'a Path,
        done: usize,
        trials: usize,
        failed: &'a [(&'a Trial, String)],
        best: Option<Best<'a>>,
    },
}

/// A sweep's finished trial with the lowest loss on the split that selects (val, else test).
pub struct Best<'a> {
    pub trial: &'a Trial,
    pub loss: f64,
    pub on: SplitName,
}

/// What a worker does with a trial.
pub enum Handling {
    /// Nothing: another worker holds its claim.
    HeldElsewhere {
        host: String,
        pid: u32,
    },
    /// Nothing: it got there before.
    DoneBefore,
    /// Resumes it from its last checkpoint.
    Resuming {
        status: &'static str,
        step: usize,
    },
    Starting,
}

/// A rung of a halving search as the sweep's end shows it.
pub struct RungShown<'a> {
    pub steps: usize,
    pub complete: bool,
    pub members: Vec<Member<'a>>,
}

/// A member of a rung: its best estimate up to the rung's steps (none when it failed or has not
/// got there), and whether the rung promoted it.
pub struct Member<'a> {
    pub trial: &'a Trial,
    pub score: Option<f64>,
    pub failed: bool,
    pub promoted: bool,
}

/// Trials by where they stand, while a sweep runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub done: usize,
    pub running: usize,
    pub failed: usize,
    pub left: usize,
}
