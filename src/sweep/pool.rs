//! The pool of trial processes: `-j` at a time (`makemore sweep GRID --index I`), each with its
//! share of the cores, their ends noted, a signal passed on once, none outliving the sweep.

use std::collections::VecDeque;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::halving::{self, Halving};
use super::standing::state;
use super::{Event, Grid, SweepRequest, Tally, Trial, manifest};
use crate::error::{Error, Result};
use crate::rundir::{self, Status};
use crate::signals;

/// The trials of a sweep waiting, running (as child processes) and ended.
pub(super) struct Pool<'a> {
    pub(super) request: &'a SweepRequest,
    pub(super) dir: &'a Path,
    pub(super) logs: PathBuf,
    pub(super) jobs: usize,
    /// Each trial's share of the cores.
    pub(super) threads: usize,
    pub(super) queue: VecDeque<&'a Trial>,
    pub(super) running: Vec<(Child, &'a Trial)>,
    pub(super) done_before: usize,
    pub(super) finished: usize,
    pub(super) interrupted: usize,
    pub(super) failed: Vec<(&'a Trial, String)>,
    pub(super) started: Instant,
    /// A halving search's workers run here instead of trials.
    pub(super) search: Option<SearchProgress<'a>>,
}

/// What a pool of search workers last said of the search.
pub(super) struct SearchProgress<'a> {
    pub(super) halving: &'a Halving,
    /// The rung and how many of its members had reached its steps.
    pub(super) seen: Option<(usize, usize)>,
    pub(super) looked: Instant,
}

impl<'a> Pool<'a> {
    /// `jobs` at a time from `queue`, each child with its share of the cores.
    pub(super) fn new(
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
    pub(super) fn run(&mut self, grid: &Grid, say: &mut dyn FnMut(Event)) -> Result<()> {
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
            manifest::write(grid, self.dir)?;
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
        .arg("--share-cores")
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
pub(super) fn failure(dir: &Path, trial: &Trial, logs: &Path) -> String {
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
