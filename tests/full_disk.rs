//! A disk that fills up during a run: the run stops with a clear error, says `failed` in its
//! summary, and its last complete checkpoints stay readable. Needs root (a small tmpfs is
//! mounted); elsewhere it says it skipped, and under `CI=true` a skip is a failure.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{experiment, stderr};

/// A tmpfs of `size` mounted at `path` for as long as it lives.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the file system refuses.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

#[test]
fn a_full_disk_fails_the_run_cleanly_and_keeps_its_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_disk) = Tmpfs::mount(&dir.path().join("disk"), "8m") else {
        let why = "cannot mount a tmpfs (needs root)";
        assert!(std::env::var_os("CI").is_none(), "under CI: {why}");
        eprintln!("skipped: {why}");
        return;
    };
    let disk = dir.path().join("disk");
    experiment(&disk, "mlp", "");
    let mut child = common::command(&disk)
        .args(["run", "mlp.toml", "--runs", "runs"])
        .args([
            "--set",
            "schedule.steps=1000000",
            "--set",
            "schedule.eval_every=50",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let run = common::wait_for("a first checkpoint", || {
        let run = common::run_dirs(&disk.join("runs/mlp")).pop()?;
        run.join("checkpoints/last.ckpt").exists().then_some(run)
    });
    fill(&disk.join("filler"));

    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the run did not notice the full disk in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");

    let summary = makemore::rundir::read_summary(&run).unwrap();
    assert_eq!(summary.status, makemore::rundir::Status::Failed);
    assert!(
        summary
            .error
            .as_deref()
            .unwrap_or("")
            .contains("No space left"),
        "{:?}",
        summary.error
    );
    for which in ["best", "last"] {
        let path = run.join(format!("checkpoints/{which}.ckpt"));
        makemore::checkpoint::Checkpoint::read(&path).unwrap();
    }
    let out = common::makemore(&["sample", run.to_str().unwrap(), "-n", "3"], &disk, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
