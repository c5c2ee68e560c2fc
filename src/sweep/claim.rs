//! Claims: which worker runs which trial, safe between processes and machines that share a file
//! system, without a server.
//!
//! A trial's claims are the files `<id>.0`, `<id>.1`, …, each created whole and once (a written
//! temporary file moved to its name only if that name is free: atomic, also on NFS) and never
//! moved or removed afterwards. The newest one speaks for the trial. To take over from a dead
//! holder a worker creates the next number, which of several contenders only one can do; so no
//! worker can move away a claim another has just made, and each worker only ever rewrites its own
//! file: a heartbeat every `HEARTBEAT`, "released" when it lets go.
//!
//! A claim is live when its holder is. On the holder's host: the process it names exists and
//! started when the claim says (a reused pid belongs to another process). From another host: the
//! file was rewritten within `STALE`, judged by the file system's own clock (the modification time
//! of a file written just now), so the clocks of two machines are never compared.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use crate::files::write_atomic;

const HEARTBEAT: Duration = Duration::from_secs(30);
const STALE: Duration = Duration::from_secs(300);

/// A held claim; dropping it releases the trial.
pub struct Claim {
    path: PathBuf,
    heartbeat: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

/// Who holds a claim, as its file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// When the process started, in the host's own units (0 where the host cannot say).
    start: u64,
    beat: u64,
}

impl Holder {
    fn me(beat: u64) -> Holder {
        let pid = std::process::id();
        Holder {
            host: hostname(),
            pid,
            start: process_start(pid).unwrap_or(0),
            beat,
        }
    }

    fn line(&self) -> String {
        format!("{} {} {} {}\n", self.host, self.pid, self.start, self.beat)
    }

    /// `None` for "released" and for anything unreadable: neither holds the trial.
    fn parse(text: &str) -> Option<Holder> {
        let mut fields = text.trim().rsplitn(4, ' ');
        let beat = fields.next()?.parse().ok()?;
        let start = fields.next()?.parse().ok()?;
        let pid = fields.next()?.parse().ok()?;
        let host = fields.next()?.to_string();
        Some(Holder {
            host,
            pid,
            start,
            beat,
        })
    }
}

impl Claim {
    /// Claims trial `id` in `dir`, or says who holds it.
    pub fn take(dir: &Path, id: &str) -> anyhow::Result<Result<Claim, Holder>> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut generation = newest(dir, id).unwrap_or(0);
        loop {
            let path = claim_path(dir, id, generation);
            if create(&path, &Holder::me(0))? {
                return Ok(Ok(Claim::hold(path)));
            }
            if let Some(holder) = live_holder(dir, &path)? {
                return Ok(Err(holder));
            }
            generation += 1;
        }
    }

    fn hold(path: PathBuf) -> Claim {
        let (stop, stopped) = mpsc::channel::<()>();
        let file = path.clone();
        let beats = std::thread::spawn(move || {
            let mut beat = 0;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT) {
                beat += 1;
                let _ = write_atomic(&file, Holder::me(beat).line().as_bytes());
            }
        });
        Claim {
            path,
            heartbeat: Some((stop, beats)),
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // The heartbeat stops first, so that no late beat overwrites "released".
        if let Some((stop, beats)) = self.heartbeat.take() {
            drop(stop);
            let _ = beats.join();
        }
        let _ = write_atomic(&self.path, b"released\n");
    }
}

/// Whether trial `id` is held by a live worker.
pub fn is_held(dir: &Path, id: &str) -> bool {
    newest(dir, id)
        .is_some_and(|g| live_holder(dir, &claim_path(dir, id, g)).is_ok_and(|h| h.is_some()))
}

/// How many trials live workers on this host hold in `dir`. Asked every second by a worker that
/// shares idle cores: one listing finds each trial's newest claim (numbered from 0 without gaps)
/// and only this host's holders are checked, which needs no probe of the file system's clock.
pub fn held_here(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut newest: HashMap<String, u32> = HashMap::new();
    for name in entries.filter_map(|entry| entry.ok()?.file_name().into_string().ok()) {
        // Temporary files and clock probes have no number after their last dot.
        let Some((id, generation)) = name.rsplit_once('.') else {
            continue;
        };
        let Ok(generation) = generation.parse::<u32>() else {
            continue;
        };
        let seen = newest.entry(id.to_string()).or_insert(generation);
        *seen = (*seen).max(generation);
    }
    let here = hostname();
    let held_here = |(id, generation): (&String, &u32)| {
        holder_at(&claim_path(dir, id, *generation))
            .is_some_and(|h| h.host == here && alive(h.pid, h.start))
    };
    newest.iter().filter(|&claim| held_here(claim)).count()
}

fn claim_path(dir: &Path, id: &str, generation: u32) -> PathBuf {
    dir.join(format!("{id}.{generation}"))
}

/// The newest claim's number, if the trial was ever claimed. Claims are never removed, so their
/// numbers have no gaps.
fn newest(dir: &Path, id: &str) -> Option<u32> {
    (0..)
        .take_while(|&g| claim_path(dir, id, g).exists())
        .last()
}

/// Writes `holder` to `path` whole, unless something is there already (then `false`).
fn create(path: &Path, holder: &Holder) -> anyhow::Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let failed = |e: std::io::Error| anyhow::anyhow!("cannot create {}: {e}", path.display());
    let mut file = tempfile::Builder::new()
        .prefix(".")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(failed)?;
    std::io::Write::write_all(&mut file, holder.line().as_bytes()).map_err(failed)?;
    match file.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(failed(e.error)),
    }
}

/// Who the claim at `path` names, if it names anyone.
fn holder_at(path: &Path) -> Option<Holder> {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| Holder::parse(&t))
}

/// The holder of the claim at `path` if it is alive.
fn live_holder(dir: &Path, path: &Path) -> anyhow::Result<Option<Holder>> {
    let Some(holder) = holder_at(path) else {
        return Ok(None);
    };
    let live = if holder.host == hostname() {
        alive(holder.pid, holder.start)
    } else {
        beat_age(dir, path)?.is_none_or(|age| age <= STALE)
    };
    Ok(live.then_some(holder))
}

/// How long ago the claim at `path` was last written, by the file system's clock; `None` where
/// the file system cannot say (then the claim counts as live: a trial run twice loses more than a
/// trial that waits).
fn beat_age(dir: &Path, path: &Path) -> anyhow::Result<Option<Duration>> {
    let probe = tempfile::Builder::new()
        .prefix(".clock")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let now = probe.as_file().metadata().and_then(|m| m.modified()).ok();
    let then = fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok(now
        .zip(then)
        .map(|(now, then)| now.duration_since(then).unwrap_or_default()))
}

/// Whether the process `pid` that started at `start` still runs on this host. A zombie (killed,
/// not yet reaped: a container's init may take its time) has ended.
fn alive(pid: u32, start: u64) -> bool {
    let Ok(pid_i32) = i32::try_from(pid) else {
        return false;
    };
    let exists = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid_i32), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    };
    exists
        && match process_stat(pid) {
            Some((state, started)) => {
                !matches!(state, 'Z' | 'X') && (start == 0 || started == start)
            }
            None => true, // no /proc (not Linux): the signal's answer is all there is
        }
}

/// The state and the start time (clock ticks since boot) of process `pid`, from `/proc`.
fn process_stat(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields 3 and 22; the fields after the command name (which may hold spaces) start at 3.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// When process `pid` started; `None` off Linux.
fn process_start(pid: u32) -> Option<u64> {
    process_stat(pid).map(|(_, start)| start)
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn plant(dir: &Path, id: &str, generation: u32, text: &str) -> PathBuf {
        fs::create_dir_all(dir).unwrap();
        let path = claim_path(dir, id, generation);
        fs::write(&path, text).unwrap();
        path
    }

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    /// A child killed and not yet waited for: a zombie until this process ends.
    fn zombie() -> std::process::Child {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        child.kill().unwrap();
        while process_stat(child.id()).is_some_and(|(state, _)| state != 'Z') {
            std::thread::sleep(Duration::from_millis(1));
        }
        child
    }

    #[test]
    fn a_held_trial_is_refused_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let claim = Claim::take(dir.path(), "t").unwrap().unwrap();
        let Err(holder) = Claim::take(dir.path(), "t").unwrap() else {
            panic!("a held trial was claimed again");
        };
        assert_eq!(holder.pid, std::process::id());
        assert!(is_held(dir.path(), "t"));
        drop(claim);
        assert!(!is_held(dir.path(), "t"));
        let again = Claim::take(dir.path(), "t").unwrap().unwrap();
        assert_eq!(again.path, claim_path(dir.path(), "t", 1));
    }

    /// Only trials whose newest claim a live process of this host holds count: not a released
    /// one, not one whose holder died, not another host's, not a temporary file.
    #[test]
    fn held_here_counts_this_hosts_live_claims() {
        let dir = tempfile::tempdir().unwrap();
        let (host, me, start) = (
            hostname(),
            std::process::id(),
            process_start(std::process::id()),
        );
        let live = format!("{host} {me} {} 1\n", start.unwrap_or(0));
        assert_eq!(held_here(&dir.path().join("none")), 0);
        let _a = Claim::take(dir.path(), "a").unwrap().unwrap();
        drop(Claim::take(dir.path(), "b").unwrap().unwrap());
        plant(dir.path(), "c", 0, &format!("{host} {} 0 1\n", dead_pid()));
        plant(dir.path(), "c", 1, &live);
        plant(dir.path(), "d", 0, &live);
        plant(dir.path(), "d", 1, &format!("{host} {} 0 1\n", dead_pid()));
        for generation in 0..2 {
            plant(
                dir.path(),
                "f",
                generation,
                &format!("{host} {} 0 1\n", dead_pid()),
            );
        }
        plant(dir.path(), "f", 2, &live);
        plant(dir.path(), "e", 0, &format!("elsewhere-{host} {me} 0 1\n"));
        fs::write(dir.path().join(".x1234.tmp"), &live).unwrap();
        assert_eq!(held_here(dir.path()), 3, "a, c and f");
    }

    #[test]
    fn dead_reused_and_unreadable_holders_are_taken_over_by_the_next_number() {
        let dir = tempfile::tempdir().unwrap();
        let host = hostname();
        let me = std::process::id();
        let cases = [
            format!("{host} {} 0 0", dead_pid()),
            format!("{host} {} 0 0", zombie().id()),
            // Our own pid, but a process that started at another time: the pid was reused.
            format!("{host} {me} {} 0", process_start(me).unwrap() + 1),
            "garbage".to_string(),
            "released".to_string(),
        ];
        for (i, text) in cases.iter().enumerate() {
            let id = format!("t{i}");
            plant(dir.path(), &id, 0, text);
            let claim = Claim::take(dir.path(), &id).unwrap();
            assert!(claim.is_ok(), "{text}: not taken over");
            assert_eq!(
                fs::read_to_string(claim_path(dir.path(), &id, 0)).unwrap(),
                *text
            );
        }
    }

    #[test]
    fn another_hosts_claim_is_stale_only_by_the_file_systems_clock() {
        let dir = tempfile::tempdir().unwrap();
        plant(dir.path(), "fresh", 0, "elsewhere 1 0 7");
        assert!(Claim::take(dir.path(), "fresh").unwrap().is_err());
        let old = plant(dir.path(), "old", 0, "elsewhere 1 0 7");
        let long_ago = SystemTime::now() - STALE - Duration::from_secs(60);
        fs::File::options()
            .append(true)
            .open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        assert!(Claim::take(dir.path(), "old").unwrap().is_ok());
    }

    #[test]
    fn of_many_contenders_for_a_dead_claim_exactly_one_wins() {
        for round in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let dead = format!("{} {} 0 0", hostname(), dead_pid());
            for id in 0..20 {
                plant(dir.path(), &id.to_string(), 0, &dead);
            }
            let winners: Vec<Vec<(String, Claim)>> = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..4)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut held = Vec::new();
                            for id in 0..20 {
                                if let Ok(claim) = Claim::take(dir.path(), &id.to_string()).unwrap()
                                {
                                    held.push((id.to_string(), claim));
                                }
                            }
                            held
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap()).collect()
            });
            // Every claim is still held here, so an id won twice was held twice at once.
            let mut all: Vec<&str> = winners
                .iter()
                .flatten()
                .map(|(id, _)| id.as_str())
                .collect();
            all.sort();
            let won = all.len();
            all.dedup();
            assert_eq!((won, all.len()), (20, 20), "round {round}: {all:?}");
        }
    }
}
