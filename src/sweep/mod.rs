//! `makemore sweep`: every trial of a grid, once, however often the sweep is started and by how
//! many workers.
//!
//! A trial's run directory is `<runs>/<sweep>/<trial id>/`, so what is on disk says what is left:
//! a finished trial is skipped, an interrupted one resumed from its last checkpoint, a failed one
//! retried. Workers claim a trial before touching it (`claim.rs`). Without `--index`, the sweep
//! runs each trial as a child process (`makemore sweep GRID --index I`), `-j` at a time, each
//! with its share of the cores; with it, this process runs that one trial (a scheduler's task).

mod claim;
mod emit;
mod event;
mod grid;
pub mod halving;
pub mod manifest;
mod pool;
mod search;
mod standing;

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::rundir::{self, Status};
use crate::{run, signals};

pub use emit::{Emit, SlurmOptions, sbatch_value};
pub use event::{Best, Event, Handling, Member, RungShown, Tally};
pub use grid::{Grid, Trial, load as load_grid};
use halving::Halving;
use pool::{Pool, SearchProgress, failure};
use standing::{check_readable, dry_run, never_started, state, unreadable};

/// What `makemore sweep` was asked for (the binary's `--help` says what each is).
#[derive(Debug, Clone)]
pub struct SweepRequest {
    pub grid: PathBuf,
    pub sets: Vec<String>,
    pub runs: PathBuf,
    /// Trials at once (at least 1); each gets an equal share of the cores.
    pub jobs: u16,
    /// Run exactly this trial (default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX if set).
    pub index: Option<usize>,
    /// A worker the sweep started here: it takes the cores its fellows leave idle.
    pub share_cores: bool,
    pub dry_run: bool,
    pub fail_fast: bool,
    pub emit: Option<Emit>,
    pub slurm: SlurmOptions,
}

/// The finished trial of `grid` whose selected checkpoint has the lowest selection loss.
fn best<'a>(grid: &'a Grid, dir: &Path) -> Option<Best<'a>> {
    grid.trials
        .iter()
        .filter_map(|trial| {
            let summary = rundir::read_summary(&dir.join(&trial.id)).ok()?;
            let loss = summary.selection_loss()?;
            (summary.status == Status::Done).then(|| Best {
                trial,
                loss,
                on: summary.selected_on(),
            })
        })
        .min_by(|a, b| a.loss.total_cmp(&b.loss))
}

/// Runs the sweep `request` asks for (or plans it, or hands it to a scheduler), telling `say`
/// what happens.
pub fn sweep(request: &SweepRequest, say: &mut dyn FnMut(Event)) -> Result<()> {
    let grid = grid::load(&request.grid, &request.sets)?;
    let dir = request.runs.join(&grid.name);
    if let Some(emit) = request.emit {
        return emit::emit(emit, &grid, &dir, request, say);
    }
    if let Some(warning) = selects_on_test(&grid) {
        say(Event::Warning(warning));
    }
    if request.dry_run {
        dry_run(&grid, &dir, say);
        return Ok(());
    }
    // Every argument is checked before the sweep's directory exists.
    let index = match request.index {
        Some(index) => Some(index),
        None => index_from_environment()?,
    };
    if let Some(index) = index {
        trial_at(&grid, index)?;
    }
    if request.share_cores {
        // The sweep's workers on this host share its cores equally among those at work (with a
        // trial claimed), so that the last trials of a rung or of a grid take the idle ones.
        let claims = dir.join("claims");
        crate::backend::share_idle_cores(move || claim::held_here(&claims));
    }
    check_readable(&grid, &dir)?;
    fs::create_dir_all(&dir)
        .map_err(|e| Error::input(format!("cannot create {}: {e}", dir.display())))?;
    manifest::write_grid(&grid, &dir)?;
    // From the start, so that `report` knows an interrupted search's trials (a grid's report
    // needs no manifest: each run directory says what it is).
    if grid.halving.is_some() {
        manifest::write(&grid, &dir)?;
    }
    let result = match (index, &grid.halving) {
        (Some(index), None) => run_one(&grid, &dir, index, None, say),
        (None, None) => run_all(&grid, &dir, request, say),
        (Some(index), Some(h)) => work_on_search(h, &grid, &dir, index, request.fail_fast, say),
        (None, Some(h)) => run_search(h, &grid, &dir, request, say),
    };
    manifest::write(&grid, &dir)?;
    result
}

/// A warning when trials have no validation split: they select their checkpoints on test, a
/// search promotes and crowns on test, and the report ranks them on test, so that the test
/// figure is no longer a held-out one.
fn selects_on_test(grid: &Grid) -> Option<String> {
    let on_test = grid
        .trials
        .iter()
        .filter(|t| t.experiment.dataset.val_fraction == 0.0)
        .count();
    if on_test == 0 {
        return None;
    }
    let what = match grid.halving {
        Some(_) => "the search promotes them and picks its winner on the test split",
        None => "their checkpoints are chosen, and the report ranks them, on the test split",
    };
    Some(format!(
        "warning: {on_test} of {} trials have no validation split (dataset.val_fraction = 0): \
         {what}, whose figures are then not held out; set dataset.val_fraction (e.g. 0.1) in the \
         experiment or the grid's [set]",
        grid.trials.len()
    ))
}

/// `SLURM_ARRAY_TASK_ID` (Slurm job arrays) or `JOB_COMPLETION_INDEX` (Kubernetes Indexed Jobs).
fn index_from_environment() -> Result<Option<usize>> {
    for name in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
        if let Ok(value) = std::env::var(name) {
            return value.trim().parse().map(Some).map_err(|_| {
                Error::input(format!(
                    "{name}={value}: expected a trial index (0, 1, ...)"
                ))
            });
        }
    }
    Ok(None)
}

fn trial_at(grid: &Grid, index: usize) -> Result<&Trial> {
    grid.trials.get(index).ok_or_else(|| {
        Error::input(format!(
            "trial index {index}: {} has {} trials (0 to {})",
            grid.file.display(),
            grid.trials.len(),
            grid.trials.len().saturating_sub(1)
        ))
    })
}

/// Runs trial `index` here (to its end, or to step `until`), unless another worker holds it or
/// it got there before.
fn run_one(
    grid: &Grid,
    dir: &Path,
    index: usize,
    until: Option<usize>,
    say: &mut dyn FnMut(Event),
) -> Result<()> {
    let trial = trial_at(grid, index)?;
    let _claim = match claim::Claim::take(&dir.join("claims"), &trial.id)? {
        Ok(claim) => claim,
        Err(holder) => {
            let (host, pid) = (holder.host, holder.pid);
            let handling = Handling::HeldElsewhere { host, pid };
            say(Event::Trial { trial, handling });
            return Ok(());
        }
    };
    let run_dir = dir.join(&trial.id);
    let got_there = |s: &rundir::Summary| {
        s.status == Status::Done || until.is_some_and(|u| s.step >= u && s.status != Status::Failed)
    };
    match rundir::read_summary(&run_dir) {
        Ok(summary) if got_there(&summary) => {
            let handling = Handling::DoneBefore;
            say(Event::Trial { trial, handling });
            Ok(())
        }
        Ok(summary) => {
            let (status, step) = (summary.status.name(), summary.step);
            let handling = Handling::Resuming { status, step };
            say(Event::Trial { trial, handling });
            run::resume(&run_dir, &[], until).map(|_| ())
        }
        Err(error) => {
            if !never_started(&run_dir) {
                return Err(unreadable(trial, &error));
            }
            // An older version's directory, killed before its first summary: nothing to keep.
            if run_dir.exists() {
                fs::remove_dir_all(&run_dir)?;
            }
            let handling = Handling::Starting;
            say(Event::Trial { trial, handling });
            run::run_in(&trial.experiment, &run_dir, until).map(|_| ())
        }
    }
}

/// Runs every trial that is not done, `-j` at a time, each in its own process.
fn run_all(
    grid: &Grid,
    dir: &Path,
    request: &SweepRequest,
    say: &mut dyn FnMut(Event),
) -> Result<()> {
    let (done, queue): (VecDeque<&Trial>, VecDeque<&Trial>) = grid
        .trials
        .iter()
        .partition(|trial| state(dir, trial) == Some(Status::Done));
    let to_go = queue.len();
    let mut pool = Pool::new(request, dir, queue, usize::from(request.jobs))?;
    pool.done_before = done.len();
    say(Event::Start {
        name: &grid.name,
        trials: grid.trials.len(),
        done_before: done.len(),
        to_go,
        jobs: pool.jobs,
        threads: pool.threads,
    });
    pool.run(grid, say)?;
    let failed = &pool.failed;
    say(Event::Finished {
        name: &grid.name,
        dir,
        done: grid
            .trials
            .iter()
            .filter(|t| state(dir, t) == Some(Status::Done))
            .count(),
        trials: grid.trials.len(),
        failed,
        best: best(grid, dir),
    });
    if signals::interrupted() || pool.interrupted > 0 {
        return Err(Error::Interrupted(
            "sweep interrupted; run the same command again to go on: finished trials are kept"
                .into(),
        ));
    }
    match failed.len() {
        0 => Ok(()),
        n => Err(Error::Failed(anyhow::anyhow!(
            "{n} trial(s) failed; the same command retries them"
        ))),
    }
}

/// A worker of a halving search (a `--index` task): trains the members of the current rung to
/// its steps, trial `index` first while it has work, the others after it in order, until the
/// search is done. With nothing to take (the rung's last trials run elsewhere) it waits.
fn work_on_search(
    h: &Halving,
    grid: &Grid,
    dir: &Path,
    index: usize,
    fail_fast: bool,
    say: &mut dyn FnMut(Event),
) -> Result<()> {
    loop {
        let rungs = halving::plan(h, &grid.ids(), dir);
        if halving::done(h, &rungs) {
            return Ok(());
        }
        let rung = rungs.last().expect("a plan has a rung");
        let mut order = rung.pending.clone();
        order.sort_by_key(|&i| (i < index, i));
        let free = order
            .into_iter()
            .find(|&i| !claim::is_held(&dir.join("claims"), &grid.trials[i].id));
        match free.map(|i| run_one(grid, dir, i, Some(rung.steps), say)) {
            // A failed trial says so in its summary and leaves the search (unless it must stop).
            Some(Ok(())) => {}
            Some(Err(Error::Failed(_))) if !fail_fast => {}
            Some(Err(error)) => return Err(error),
            None => std::thread::sleep(Duration::from_millis(500)),
        }
        if signals::interrupted() {
            return Err(Error::Interrupted(
                "interrupted; run the same sweep again to go on".into(),
            ));
        }
    }
}

/// A halving search here: `-j` workers as child processes, then the rungs, the winner and the
/// compute it took.
fn run_search(
    h: &Halving,
    grid: &Grid,
    dir: &Path,
    request: &SweepRequest,
    say: &mut dyn FnMut(Event),
) -> Result<()> {
    let jobs = usize::from(request.jobs).min(grid.trials.len()).max(1);
    // Each child is a worker that starts with its trial and goes on with the others.
    let workers = grid.trials.iter().take(jobs).collect();
    let mut pool = Pool::new(request, dir, workers, jobs)?;
    pool.search = Some(SearchProgress {
        halving: h,
        seen: None,
        looked: Instant::now(),
    });
    pool.run(grid, say)?;
    let ids = grid.ids();
    let rungs = halving::plan(h, &ids, dir);
    let failed: Vec<(&Trial, String)> = grid
        .trials
        .iter()
        .filter(|t| state(dir, t) == Some(Status::Failed))
        .map(|t| (t, failure(dir, t, &pool.logs)))
        .collect();
    say(Event::Rungs {
        rungs: shown(grid, h, &rungs, &failed),
        winner: halving::winner(h, &rungs).map(|i| &grid.trials[i]),
        spent: halving::spent(&ids, dir),
        full: grid.trials.len() * h.max_steps,
        failed: &failed,
    });
    if signals::interrupted() || pool.interrupted > 0 {
        return Err(Error::Interrupted(
            "search interrupted; run the same command again to go on: nothing is lost".into(),
        ));
    }
    search_outcome(h, &rungs, &failed, &pool.failed, request.fail_fast)?;
    if let Some(warning) = selects_on_test(grid) {
        say(Event::Warning(warning));
    }
    Ok(())
}

/// The rungs as the search's end shows them: each member with its score, whether it failed,
/// and whether its complete rung promoted it.
fn shown<'a>(
    grid: &'a Grid,
    h: &Halving,
    rungs: &[halving::Rung],
    failed: &[(&Trial, String)],
) -> Vec<RungShown<'a>> {
    let show = |rung: &halving::Rung| {
        let promoted = match rung.complete {
            true => halving::promoted(rung, h.eta),
            false => Vec::new(),
        };
        let members = rung.members.iter().zip(&rung.scores);
        RungShown {
            steps: rung.steps,
            complete: rung.complete,
            members: members
                .map(|(&i, &score)| Member {
                    trial: &grid.trials[i],
                    score,
                    failed: failed.iter().any(|(t, _)| t.index == i),
                    promoted: promoted.contains(&i),
                })
                .collect(),
        }
    };
    rungs.iter().map(show).collect()
}

/// A finished search's exit: a winner (even when some trials failed, which the rungs list), or
/// an error that says why there is none; under `--fail-fast`, any failure.
fn search_outcome(
    h: &Halving,
    rungs: &[halving::Rung],
    failed: &[(&Trial, String)],
    workers_failed: &[(&Trial, String)],
    fail_fast: bool,
) -> Result<()> {
    let first = failed.first().or(workers_failed.first());
    if let (true, Some((trial, why))) = (fail_fast, first) {
        return Err(Error::Failed(anyhow::anyhow!(
            "trial {} failed, and --fail-fast stopped the search: {why}",
            trial.index
        )));
    }
    if halving::winner(h, rungs).is_some() && workers_failed.is_empty() {
        return Ok(());
    }
    let why = match (failed.len(), workers_failed.first()) {
        (_, Some((_, why))) => format!("a worker failed: {why}"),
        (n, None) if n == rungs[0].members.len() => format!("every trial failed ({n})"),
        _ => "no trial has an estimate of the selection loss to rank it by".to_string(),
    };
    Err(Error::Failed(anyhow::anyhow!(
        "the search has no winner: {why}"
    )))
}
