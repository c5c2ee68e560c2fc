//! Claims: which worker runs which trial, safe between processes and machines that share a file
//! system, without a server.
//!
//! A claim is a file created with `create_new` (atomic, also on NFS v3+), naming its holder's host
//! and process. A holder touches it every `HEARTBEAT`; a claim whose holder is dead (same host:
//! no such process; another host: no heartbeat for `STALE`) is taken over by renaming it away,
//! which only one of several contenders can do.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;

const HEARTBEAT: Duration = Duration::from_secs(30);
const STALE: Duration = Duration::from_secs(300);

/// A held claim; dropping it releases the trial.
pub struct Claim {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

/// Who holds a claim, as its file says.
pub struct Holder {
    pub host: String,
    pub pid: u32,
}

impl Claim {
    /// Claims `id` in `dir`, or says who holds it.
    pub fn take(dir: &Path, id: &str) -> anyhow::Result<Result<Claim, Holder>> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(id);
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    writeln!(file, "{} {}", hostname(), std::process::id())?;
                    return Ok(Ok(Claim::hold(path)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = read_holder(&path);
                    if !is_stale(&path, holder.as_ref()) {
                        return Ok(Err(holder.unwrap_or(Holder {
                            host: "?".into(),
                            pid: 0,
                        })));
                    }
                    // Rename, not remove: of several workers only one moves the stale claim.
                    let away = path.with_extension(format!("stale-{}", std::process::id()));
                    if fs::rename(&path, &away).is_ok() {
                        let _ = fs::remove_file(&away);
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()));
                }
            }
        }
        let holder = read_holder(&path).unwrap_or(Holder {
            host: "?".into(),
            pid: 0,
        });
        Ok(Err(holder))
    }

    fn hold(path: PathBuf) -> Claim {
        let stop = Arc::new(AtomicBool::new(false));
        let (beat, done) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let age = fs::metadata(&beat)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                if age.is_some_and(|age| age >= HEARTBEAT)
                    && let Ok(file) = File::options().append(true).open(&beat)
                {
                    let _ = file.set_modified(SystemTime::now());
                }
            }
        });
        Claim { path, stop }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether the claim at `path` is held by a live worker.
pub fn is_held(path: &Path) -> bool {
    path.exists() && !is_stale(path, read_holder(path).as_ref())
}

fn read_holder(path: &Path) -> Option<Holder> {
    let text = fs::read_to_string(path).ok()?;
    let (host, pid) = text.trim().rsplit_once(' ')?;
    Some(Holder {
        host: host.to_string(),
        pid: pid.parse().ok()?,
    })
}

fn is_stale(path: &Path, holder: Option<&Holder>) -> bool {
    match holder {
        Some(h) if h.host == hostname() => !alive(h.pid),
        // Another host (or a claim still being written): only the heartbeat tells.
        _ => fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE),
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

pub fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return "localhost".into();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}
