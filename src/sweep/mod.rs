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

use std::collections::VecDeque;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::progress::format_duration;
use crate::rundir::{self, Status, write_atomic};
use crate::say;
use crate::{run, signals};

pub use emit::{Emit, SlurmOptions};
use grid::{Grid, Trial};

pub struct SweepRequest {
    pub grid: PathBuf,
    pub sets: Vec<String>,
    pub runs: PathBuf,
    pub jobs: usize,
    pub index: Option<usize>,
    pub dry_run: bool,
    pub fail_fast: bool,
    pub emit: Option<Emit>,
    pub slurm: SlurmOptions,
}

pub fn sweep_command(request: &SweepRequest) -> Result<()> {
    let grid = grid::load(&request.grid, &request.sets)?;
    let dir = request.runs.join(&grid.name);
    if let Some(emit) = request.emit {
        return emit::emit(emit, &grid, &dir, request);
    }
    if request.dry_run {
        dry_run(&grid, &dir);
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
    fs::create_dir_all(&dir)
        .map_err(|e| Error::input(format!("cannot create {}: {e}", dir.display())))?;
    write_atomic(&dir.join("grid.toml"), grid.resolved.as_bytes())?;
    signals::install();
    let result = match index {
        Some(index) => run_one(&grid, &dir, index),
        None => run_all(&grid, &dir, request),
    };
    write_manifest(&grid, &dir)?;
    result
}

/// Where a trial stands, from its run directory and its claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done,
    Interrupted,
    Failed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Done => "done",
            State::Interrupted => "interrupted",
            State::Failed => "failed",
        }
    }
}

fn state(dir: &Path, trial: &Trial) -> State {
    if claim::is_held(&dir.join("claims"), &trial.id) {
        return State::Running;
    }
    match rundir::read_summary(&dir.join(&trial.id)).map(|s| s.status) {
        Ok(Status::Done) => State::Done,
        Ok(Status::Failed) => State::Failed,
        // "running" with no live claim: its worker died.
        Ok(Status::Interrupted | Status::Running) => State::Interrupted,
        Err(_) => State::Pending,
    }
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
            state(dir, trial).name().to_string(),
            dir.join(&trial.id).display().to_string(),
            grid::describe(trial),
        ])
        .map_err(anyhow::Error::from)?;
    }
    let bytes = out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_atomic(&dir.join("trials.csv"), &bytes)?;
    drop(lock);
    Ok(())
}

fn dry_run(grid: &Grid, dir: &Path) {
    say!(
        "{}: {} trials in {}",
        grid.name,
        grid.trials.len(),
        dir.display()
    );
    for trial in &grid.trials {
        let action = match state(dir, trial) {
            State::Pending => "run",
            State::Running => "skip (running elsewhere)",
            State::Done => "skip (done)",
            State::Interrupted => "resume",
            State::Failed => "retry",
        };
        say!(
            "{:>4}  {}  {:<24}  {}",
            trial.index,
            trial.id,
            action,
            grid::describe(trial)
        );
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

/// Runs trial `index` here, unless another worker holds it or it is done.
fn run_one(grid: &Grid, dir: &Path, index: usize) -> Result<()> {
    let trial = trial_at(grid, index)?;
    let label = format!("trial {index} ({}, {})", trial.id, grid::describe(trial));
    let _claim = match claim::Claim::take(&dir.join("claims"), &trial.id)? {
        Ok(claim) => claim,
        Err(holder) => {
            say!(
                "{label}: running elsewhere ({} pid {})",
                holder.host,
                holder.pid
            );
            return Ok(());
        }
    };
    let run_dir = dir.join(&trial.id);
    match rundir::read_summary(&run_dir) {
        Ok(summary) if summary.status == Status::Done => {
            say!("{label}: done before");
            Ok(())
        }
        Ok(summary) => {
            let status = summary.status.name();
            say!("{label}: {status} at step {}, going on", summary.step);
            run::resume(&run_dir, &[]).map(|_| ())
        }
        Err(_) => {
            // Killed between creating the directory and its first summary: nothing to keep.
            if run_dir.exists() {
                fs::remove_dir_all(&run_dir)?;
            }
            say!("{label}: starting");
            run::run_in(&trial.experiment, &run_dir).map(|_| ())
        }
    }
}

/// Runs every trial that is not done, `-j` at a time, each in its own process.
fn run_all(grid: &Grid, dir: &Path, request: &SweepRequest) -> Result<()> {
    let mut queue: VecDeque<&Trial> = VecDeque::new();
    let mut done_before = 0;
    for trial in &grid.trials {
        match state(dir, trial) {
            State::Done => done_before += 1,
            _ => queue.push_back(trial),
        }
    }
    let jobs = request.jobs.max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / jobs).max(1);
    say!(
        "{}: {} trials, {done_before} done before, {} to go, {jobs} at a time with {threads} thread(s) each",
        grid.name,
        grid.trials.len(),
        queue.len()
    );
    let logs = dir.join("logs");
    fs::create_dir_all(&logs)?;

    let started = Instant::now();
    let mut running: Vec<(Child, &Trial)> = Vec::new();
    let (mut finished, mut failed, mut interrupted) = (0, Vec::new(), 0);
    let mut stopping = false;
    loop {
        while !stopping && running.len() < jobs {
            let Some(trial) = queue.pop_front() else {
                break;
            };
            let child = spawn_trial(
                request,
                trial,
                threads,
                &logs.join(format!("{}.log", trial.id)),
            )?;
            running.push((child, trial));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if !stopping && (signals::interrupted() || (request.fail_fast && !failed.is_empty())) {
            stopping = true;
            for (child, _) in &running {
                // One SIGTERM each: the trial checkpoints and stops (a second would not wait).
                terminate(child);
            }
        }
        let mut i = 0;
        while i < running.len() {
            let Some(status) = running[i].0.try_wait()? else {
                i += 1;
                continue;
            };
            let (_, trial) = running.swap_remove(i);
            match status.code() {
                Some(0) => finished += 1,
                Some(130) => interrupted += 1,
                _ => failed.push((trial, failure(dir, trial, &logs))),
            }
            write_manifest(grid, dir)?;
            let left = queue.len();
            let eta = match (finished, left + running.len()) {
                (0, _) | (_, 0) => String::new(),
                (n, rest) => {
                    let per_trial = started.elapsed().as_secs_f64() / n as f64;
                    format!(
                        ", eta {}",
                        format_duration(per_trial * rest as f64 / jobs as f64)
                    )
                }
            };
            say!(
                "[{}] trial {} {}: {} done, {} running, {} failed, {} left{eta}",
                format_duration(started.elapsed().as_secs_f64()),
                trial.index,
                match status.code() {
                    Some(0) => "finished",
                    Some(130) => "interrupted",
                    _ => "failed",
                },
                done_before + finished,
                running.len(),
                failed.len(),
                left
            );
        }
    }

    say!(
        "{}: {} of {} trials done{}",
        grid.name,
        grid.trials
            .iter()
            .filter(|t| state(dir, t) == State::Done)
            .count(),
        grid.trials.len(),
        match failed.len() {
            0 => String::new(),
            n => format!(", {n} failed"),
        }
    );
    for (trial, why) in &failed {
        say!(
            "  trial {} ({}, {}): {why}",
            trial.index,
            trial.id,
            grid::describe(trial)
        );
    }
    if signals::interrupted() || interrupted > 0 {
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
