//! Where a trial stands, read from its run directory and its claim; what a sweep would do with
//! it. *Invariant:* only a directory that provably never got a summary counts as not started:
//! any other that cannot be read is "unreadable", and nothing of it is ever replaced.

use std::fs;
use std::path::Path;

use super::{Event, Grid, Trial, claim};
use crate::error::Error;
use crate::error::Result;
use crate::rundir::{self, Status};

/// Where a trial stands, from its run directory and its claim: `None` before it started,
/// `Running` while a live worker holds it; a run that says "running" with no live claim was
/// interrupted (its worker died). A trial whose summary cannot be read (damaged) counts as not
/// started here; `standing` tells it apart.
pub(super) fn state(dir: &Path, trial: &Trial) -> Option<Status> {
    standing(dir, trial).ok().flatten()
}

/// `state`, or why the trial's summary cannot be read when its directory is damaged (not one
/// that never got a summary). A trial another worker holds is that worker's to judge; and since
/// a run directory appears with its summary, one that appeared between the read and the look at
/// the directory reads the second time.
pub(super) fn standing(dir: &Path, trial: &Trial) -> anyhow::Result<Option<Status>> {
    if claim::is_held(&dir.join("claims"), &trial.id) {
        return Ok(Some(Status::Running));
    }
    let run_dir = dir.join(&trial.id);
    let summary = match rundir::read_summary(&run_dir) {
        Ok(summary) => summary,
        Err(_) if never_started(&run_dir) => return Ok(None),
        Err(_) => rundir::read_summary(&run_dir)?,
    };
    Ok(Some(match summary.status {
        Status::Running => Status::Interrupted,
        status => status,
    }))
}

pub(super) fn state_name(state: Option<Status>) -> &'static str {
    state.map_or("pending", Status::name)
}

/// Whether the run directory `run` provably never got a summary, so that starting its trial
/// loses nothing: it does not exist, or it has no summary.json (not merely an unreadable one)
/// and no checkpoint. A run directory appears with its summary (`RunDir::create_at`); only an
/// older version left one without.
pub(super) fn never_started(run: &Path) -> bool {
    let absent = |path: &Path| {
        path.symlink_metadata()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    };
    let no_checkpoint =
        fs::read_dir(run.join("checkpoints")).map_or(true, |mut entries| entries.next().is_none());
    absent(run) || (absent(&run.join("summary.json")) && no_checkpoint)
}

pub(super) fn unreadable(trial: &Trial, error: &anyhow::Error) -> Error {
    Error::input(format!(
        "trial {} ({}): {error:#}; the trial is left as it is: repair or move away its directory, \
         then start the sweep again",
        trial.index,
        trial.describe()
    ))
}

/// Refuses a sweep any of whose trials has a run directory that cannot be read back, before
/// anything runs: nothing of such a trial may be replaced.
pub(super) fn check_readable(grid: &Grid, dir: &Path) -> Result<()> {
    for trial in &grid.trials {
        standing(dir, trial).map_err(|error| unreadable(trial, &error))?;
    }
    Ok(())
}

pub(super) fn dry_run(grid: &Grid, dir: &Path, say: &mut dyn FnMut(Event)) {
    say(Event::Plan {
        name: &grid.name,
        trials: grid.trials.len(),
        dir,
    });
    for trial in &grid.trials {
        let action = match standing(dir, trial) {
            Err(_) => "refuse (its summary.json cannot be read)",
            Ok(None) => "run",
            Ok(Some(Status::Running)) => "skip (running elsewhere)",
            Ok(Some(Status::Done)) => "skip (done)",
            Ok(Some(Status::Interrupted)) => "resume",
            Ok(Some(Status::Failed)) => "retry",
        };
        say(Event::Planned { trial, action });
    }
}
