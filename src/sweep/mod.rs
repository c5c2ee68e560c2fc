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
mod grid;
pub mod halving;
mod search;

use std::collections::VecDeque;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::data::SplitName;
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::rundir::{self, Status};
use crate::{run, signals};

pub use emit::{Emit, SlurmOptions};
pub use grid::{Grid, Trial, load as load_grid};
use halving::Halving;

/// What `makemore sweep` was asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct SweepRequest {
    /// The grid file.
    pub grid: PathBuf,
    /// Override a setting of every trial (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Where the sweep's directory goes.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Trials at once; each gets an equal share of the cores.
    #[arg(short = 'j', long = "jobs", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Run exactly this trial (default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX if set).
    #[arg(long)]
    pub index: Option<usize>,
    /// List the trials and what would be run, resumed, retried or skipped.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop at the first failed trial (running ones checkpoint and stop).
    #[arg(long)]
    pub fail_fast: bool,
    /// Write an sbatch script for a Slurm job array, or print one command per trial.
    #[arg(long, value_enum)]
    pub emit: Option<Emit>,
    #[command(flatten)]
    pub slurm: SlurmOptions,
}

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
    Trial { trial: &'a Trial, what: Taking },
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
    /// The end of a halving search: each rung with its members' scores, and what it cost in
    /// training steps against every trial trained to the end.
    Rungs {
        grid: &'a Grid,
        rungs: &'a [halving::Rung],
        halving: &'a Halving,
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

/// What a worker does with a trial.
pub enum Taking {
    /// Another worker holds its claim.
    Elsewhere {
        host: String,
        pid: u32,
    },
    DoneBefore,
    /// Resumes it from its last checkpoint.
    GoingOn {
        status: &'static str,
        step: usize,
    },
    Starting,
}

/// Trials by where they stand, while a sweep runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub done: usize,
    pub running: usize,
    pub failed: usize,
    pub left: usize,
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
    check_readable(&grid, &dir)?;
    fs::create_dir_all(&dir)
        .map_err(|e| Error::input(format!("cannot create {}: {e}", dir.display())))?;
    write_atomic(&dir.join("grid.toml"), grid.resolved.as_bytes())?;
    // From the start, so that `report` knows an interrupted search's trials (a grid's report
    // needs no manifest: each run directory says what it is).
    if grid.halving.is_some() {
        write_manifest(&grid, &dir)?;
    }
    let result = match (index, &grid.halving) {
        (Some(index), None) => run_one(&grid, &dir, index, None, say),
        (None, None) => run_all(&grid, &dir, request, say),
        (Some(index), Some(h)) => work_on_search(h, &grid, &dir, index, request.fail_fast, say),
        (None, Some(h)) => run_search(h, &grid, &dir, request, say),
    };
    write_manifest(&grid, &dir)?;
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

/// Where a trial stands, from its run directory and its claim: `None` before it started,
/// `Running` while a live worker holds it; a run that says "running" with no live claim was
/// interrupted (its worker died). A trial whose summary cannot be read (damaged) counts as not
/// started here; `standing` tells it apart.
fn state(dir: &Path, trial: &Trial) -> Option<Status> {
    standing(dir, trial).ok().flatten()
}

/// `state`, or why the trial's summary cannot be read when its directory is damaged (not one
/// that never got a summary). A trial another worker holds is that worker's to judge; and since
/// a run directory appears with its summary, one that appeared between the read and the look at
/// the directory reads the second time.
fn standing(dir: &Path, trial: &Trial) -> anyhow::Result<Option<Status>> {
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

fn state_name(state: Option<Status>) -> &'static str {
    state.map_or("pending", Status::name)
}

/// `trials.csv`: one line per trial of the current grid, rewritten whole (and atomically) from
/// what is on disk, so it is consistent whichever worker wrote it last.
///
/// Workers read the states and write the file under one lock: without it a worker that read
/// another's trial as running could rename its file over the one written after that trial ended.
fn write_manifest(grid: &Grid, dir: &Path) -> Result<()> {
    let lock_path = dir.join("trials.lock");
    let lock = fs::File::create(&lock_path)
        .and_then(|file| file.lock().map(|()| file))
        .map_err(|e| anyhow::anyhow!("cannot lock {}: {e}", lock_path.display()))?;
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(["index", "id", "status", "run_dir", "overrides"])
        .map_err(anyhow::Error::from)?;
    for trial in &grid.trials {
        out.write_record([
            trial.index.to_string(),
            trial.id.clone(),
            match standing(dir, trial) {
                Ok(state) => state_name(state).to_string(),
                Err(_) => "unreadable".to_string(),
            },
            dir.join(&trial.id).display().to_string(),
            trial.describe(),
        ])
        .map_err(anyhow::Error::from)?;
    }
    let bytes = out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_atomic(&dir.join("trials.csv"), &bytes)?;
    drop(lock);
    Ok(())
}

fn dry_run(grid: &Grid, dir: &Path, say: &mut dyn FnMut(Event)) {
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
            say(Event::Trial {
                trial,
                what: Taking::Elsewhere { host, pid },
            });
            return Ok(());
        }
    };
    let run_dir = dir.join(&trial.id);
    let there = |s: &rundir::Summary| {
        s.status == Status::Done || until.is_some_and(|u| s.step >= u && s.status != Status::Failed)
    };
    match rundir::read_summary(&run_dir) {
        Ok(summary) if there(&summary) => {
            let what = Taking::DoneBefore;
            say(Event::Trial { trial, what });
            Ok(())
        }
        Ok(summary) => {
            let (status, step) = (summary.status.name(), summary.step);
            let what = Taking::GoingOn { status, step };
            say(Event::Trial { trial, what });
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
            let what = Taking::Starting;
            say(Event::Trial { trial, what });
            run::run_in(&trial.experiment, &run_dir, until).map(|_| ())
        }
    }
}

/// Whether the run directory `run` provably never got a summary, so that starting its trial
/// loses nothing: it does not exist, or it has no summary.json (not merely an unreadable one)
/// and no checkpoint. A run directory appears with its summary (`RunDir::create_at`); only an
/// older version left one without.
fn never_started(run: &Path) -> bool {
    let absent = |path: &Path| {
        path.symlink_metadata()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    };
    let no_checkpoint =
        fs::read_dir(run.join("checkpoints")).map_or(true, |mut entries| entries.next().is_none());
    absent(run) || (absent(&run.join("summary.json")) && no_checkpoint)
}

fn unreadable(trial: &Trial, error: &anyhow::Error) -> Error {
    Error::input(format!(
        "trial {} ({}): {error:#}; the trial is left as it is: repair or move away its directory, \
         then start the sweep again",
        trial.index,
        trial.describe()
    ))
}

/// Refuses a sweep any of whose trials has a run directory that cannot be read back, before
/// anything runs: nothing of such a trial may be replaced.
fn check_readable(grid: &Grid, dir: &Path) -> Result<()> {
    for trial in &grid.trials {
        standing(dir, trial).map_err(|error| unreadable(trial, &error))?;
    }
    Ok(())
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
    pool.search = Some(Watch {
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
        grid,
        rungs: &rungs,
        halving: h,
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

/// The trials of a sweep waiting, running (as child processes) and ended.
struct Pool<'a> {
    request: &'a SweepRequest,
    dir: &'a Path,
    logs: PathBuf,
    jobs: usize,
    /// Each trial's share of the cores.
    threads: usize,
    queue: VecDeque<&'a Trial>,
    running: Vec<(Child, &'a Trial)>,
    done_before: usize,
    finished: usize,
    interrupted: usize,
    failed: Vec<(&'a Trial, String)>,
    started: Instant,
    /// A halving search's workers run here instead of trials.
    search: Option<Watch<'a>>,
}

/// What a pool of search workers last said of the search.
struct Watch<'a> {
    halving: &'a Halving,
    /// The rung and how many of its members had reached its steps.
    seen: Option<(usize, usize)>,
    looked: Instant,
}

impl<'a> Pool<'a> {
    /// `jobs` at a time from `queue`, each child with its share of the cores.
    fn new(
        request: &'a SweepRequest,
        dir: &'a Path,
        queue: VecDeque<&'a Trial>,
        jobs: usize,
    ) -> Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let logs = dir.join("logs");
        fs::create_dir_all(&logs)?;
        Ok(Pool {
            request,
            dir,
            logs,
            jobs,
            threads: (cores / jobs).max(1),
            queue,
            running: Vec::new(),
            done_before: 0,
            finished: 0,
            interrupted: 0,
            failed: Vec::new(),
            started: Instant::now(),
            search: None,
        })
    }

    /// Keeps `jobs` trials running until none are left; on a signal (or a failure under
    /// `--fail-fast`) starts no more and asks the running ones to stop.
    fn run(&mut self, grid: &Grid, say: &mut dyn FnMut(Event)) -> Result<()> {
        let mut stopping = false;
        loop {
            while !stopping && self.running.len() < self.jobs {
                let Some(trial) = self.queue.pop_front() else {
                    break;
                };
                let log = self.logs.join(format!("{}.log", trial.id));
                let child = spawn_trial(self.request, trial, self.threads, &log)?;
                self.running.push((child, trial));
            }
            if self.running.is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
            let failing = self.request.fail_fast && !self.failed.is_empty();
            if !stopping && (signals::interrupted() || failing) {
                stopping = true;
                for (child, _) in &self.running {
                    // One SIGTERM each: the trial checkpoints and stops (a second would not wait).
                    terminate(child);
                }
            }
            self.reap(grid, say)?;
            self.say_rung(grid, say);
        }
    }

    /// A search's current rung, every few seconds, when more of its members have reached its
    /// steps than when it last said so.
    fn say_rung(&mut self, grid: &Grid, say: &mut dyn FnMut(Event)) {
        let started = self.started;
        let Some(watch) = self.search.as_mut() else {
            return;
        };
        if watch.looked.elapsed() < Duration::from_secs(2) {
            return;
        }
        watch.looked = Instant::now();
        let rungs = halving::plan(watch.halving, &grid.ids(), self.dir);
        let Some(rung) = rungs.last() else { return };
        let now = (rungs.len() - 1, rung.members.len() - rung.pending.len());
        if watch.seen != Some(now) {
            watch.seen = Some(now);
            say(Event::Rung {
                rung: now.0,
                steps: rung.steps,
                reached: now.1,
                members: rung.members.len(),
                elapsed_s: started.elapsed().as_secs_f64(),
            });
        }
    }

    /// Takes note of every trial whose process has ended.
    fn reap(&mut self, grid: &Grid, say: &mut dyn FnMut(Event)) -> Result<()> {
        let mut i = 0;
        while i < self.running.len() {
            let Some(status) = self.running[i].0.try_wait()? else {
                i += 1;
                continue;
            };
            let (_, trial) = self.running.swap_remove(i);
            let how = match status.code() {
                // A grid trial's process also ends well when another worker holds the trial.
                Some(0)
                    if self.search.is_none() && state(self.dir, trial) != Some(Status::Done) =>
                {
                    "left to the worker that holds it"
                }
                Some(0) => "finished",
                Some(130) => "interrupted",
                _ => "failed",
            };
            match how {
                "finished" => self.finished += 1,
                "interrupted" => self.interrupted += 1,
                "left to the worker that holds it" => {}
                _ => self
                    .failed
                    .push((trial, failure(self.dir, trial, &self.logs))),
            }
            write_manifest(grid, self.dir)?;
            if self.search.is_some() {
                say(Event::WorkerEnded {
                    index: trial.index,
                    how,
                });
                continue;
            }
            say(Event::Ended {
                trial,
                how,
                elapsed_s: self.started.elapsed().as_secs_f64(),
                tally: self.tally(),
                eta_s: self.eta_s(),
            });
        }
        Ok(())
    }

    fn tally(&self) -> Tally {
        Tally {
            done: self.done_before + self.finished,
            running: self.running.len(),
            failed: self.failed.len(),
            left: self.queue.len(),
        }
    }

    fn eta_s(&self) -> Option<f64> {
        let rest = self.queue.len() + self.running.len();
        time_left(self.started.elapsed().as_secs_f64(), self.finished, rest)
    }
}

/// Starts `makemore sweep GRID --index I` for `trial`, its output going to `log`.
fn spawn_trial(request: &SweepRequest, trial: &Trial, threads: usize, log: &Path) -> Result<Child> {
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let exe = std::env::current_exe()?;
    let mut command = Command::new(&exe);
    command
        .arg("sweep")
        .arg(&request.grid)
        .arg("--runs")
        .arg(&request.runs)
        .arg("--index")
        .arg(trial.index.to_string())
        .args(request.sets.iter().flat_map(|s| ["--set", s.as_str()]))
        .env("MAKEMORE_BACKEND__THREADS", threads.to_string())
        .env("RAYON_NUM_THREADS", threads.to_string())
        .args(request.fail_fast.then_some("--fail-fast"))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        // Its own process group, so a Ctrl-C at the terminal reaches the sweep only, which
        // passes on exactly one SIGTERM.
        .process_group(0);
    die_with_parent(&mut command);
    command.spawn().map_err(|e| {
        Error::Failed(anyhow::anyhow!(
            "cannot start {} for trial {}: {e}",
            exe.display(),
            trial.index
        ))
    })
}

fn terminate(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGTERM);
    }
}

/// Asks for a SIGTERM to the trial when the sweep dies (even by kill -9), so that a trial never
/// outlives its sweep unnoticed: it checkpoints and stops. Linux only; elsewhere an orphaned trial
/// runs to its end, and its claim keeps other workers off it meanwhile.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec, and calls only prctl and getppid, which are
    // async-signal-safe and allocate nothing.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::SIGTERM)?;
            // A parent that died before the request was made sends no signal: stop now.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other("the sweep has ended"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_: &mut Command) {}

/// Why a trial failed: its summary's error, or else the end of its log.
fn failure(dir: &Path, trial: &Trial, logs: &Path) -> String {
    if let Ok(summary) = rundir::read_summary(&dir.join(&trial.id))
        && let Some(error) = summary.error
    {
        return error;
    }
    let log = fs::read_to_string(logs.join(format!("{}.log", trial.id))).unwrap_or_default();
    log.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .to_string()
}

/// The time left for `rest` trials when `finished` took `elapsed_s` of wall time: that time per
/// finished trial already counts the trials run side by side.
fn time_left(elapsed_s: f64, finished: usize, rest: usize) -> Option<f64> {
    (finished > 0 && rest > 0).then(|| elapsed_s / finished as f64 * rest as f64)
}

#[cfg(test)]
mod tests {
    /// Two trials at a time, each taking 10 s: after 10 s, 2 are done; 8 more take 40 s.
    #[test]
    fn the_time_left_counts_the_parallel_trials_once() {
        assert_eq!(super::time_left(10.0, 2, 8), Some(40.0));
        assert_eq!(super::time_left(10.0, 0, 8), None);
        assert_eq!(super::time_left(10.0, 2, 0), None);
    }
}
