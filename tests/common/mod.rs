//! Tiny data sets and experiment files for the tests, written into a temporary directory.
#![allow(dead_code)]

pub mod reference;
pub mod torch;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const NAMES: &[&str] = &[
    "emma",
    "olivia",
    "ava",
    "isabella",
    "sophia",
    "charlotte",
    "mia",
    "amelia",
    "harper",
    "evelyn",
    "abigail",
    "emily",
    "elizabeth",
    "mila",
    "ella",
    "avery",
    "sofia",
    "camila",
    "aria",
    "scarlett",
    "liam",
    "noah",
    "william",
    "james",
    "oliver",
    "benjamin",
    "elijah",
    "lucas",
    "mason",
    "logan",
    "alexander",
    "ethan",
    "jacob",
    "michael",
    "daniel",
    "henry",
    "jackson",
    "sebastian",
    "aiden",
    "matthew",
];

/// Every model family, as `model.type` names it.
pub const FAMILIES: [&str; 9] = [
    "bigram",
    "counts",
    "mlp",
    "cnn",
    "rnn",
    "gru",
    "lstm",
    "bow",
    "transformer",
];

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn names_file(dir: &Path) -> PathBuf {
    write(dir, "names.txt", &(NAMES.join("\n") + "\n"))
}

/// A fast experiment on the tiny names file: `extra` is appended as TOML.
pub fn experiment(dir: &Path, model: &str, extra: &str) -> PathBuf {
    names_file(dir);
    let text = format!(
        "seed = 7\n\n[dataset]\npath = \"names.txt\"\ntest_size = 4\n\n[model]\ntype = \"{model}\"\nn_layer = 2\nn_head = 2\nn_embd = 8\nn_embd2 = 16\n\n\
         [schedule]\nsteps = 60\nbatch_size = 8\nlearning_rate = 1e-2\neval_every = 20\neval_batches = 2\n\
         eval_batch_size = 4\nsample_every = 30\n\n[sampling]\ncount = 3\n{extra}"
    );
    write(dir, &format!("{model}.toml"), &text)
}

pub fn makemore(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    command(cwd)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The binary, in `cwd`, without the caller's settings: a user's `MAKEMORE_*` or a Slurm job's
/// `SLURM_*` would change what every command does.
pub fn command(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_makemore"));
    command.current_dir(cwd);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("MAKEMORE_") || key.starts_with("SLURM_") || key == "RAYON_NUM_THREADS" {
            command.env_remove(key.as_ref());
        }
    }
    command
}

/// What `found` finds, polled until it does; the test fails after a minute, saying `what`.
pub fn wait_for<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = found() {
            return value;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "waited a minute for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Sends `signal` ("-9", "-TERM", ...) to `child` with kill(1).
pub fn signal(child: &std::process::Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal}");
}

/// `command`'s output with `input` on its standard input.
pub fn output_with_input(command: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The run directories of an experiment's directory (`runs/<name>/`), oldest first; not the
/// `latest` link.
pub fn run_dirs(experiment_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(experiment_dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| !p.is_symlink())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The single run directory under `runs/<name>/`.
pub fn only_run(runs: &Path, name: &str) -> PathBuf {
    let dirs = run_dirs(&runs.join(name));
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

/// The one run directory below `runs`, whatever its experiment's name.
pub fn sole_run(runs: &Path) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(runs)
        .unwrap()
        .flat_map(|group| run_dirs(&group.unwrap().path()))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

/// Step, split, loss and learning rate of every row of a run's metrics.csv: what two runs that
/// compute the same must share (the timing columns differ between runs).
pub fn losses(run: &Path) -> String {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    text.lines()
        .map(|l| l.split(',').take(4).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every file below `dir`, hidden ones too, and its bytes (empty where it cannot be read); not
/// through links.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_symlink() {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    files
}
