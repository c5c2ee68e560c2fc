//! The bad-input corpus (`tests/bad_inputs/*.toml`): every case gets its exit code (2 for bad
//! input), a message naming what is wrong, no panic, and leaves a finished run's files as they
//! were. TESTING.md's table counts the corpus; this test keeps it true (`UPDATE_GOLDEN=1`
//! rewrites it, then fails).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    args: Vec<String>,
    /// Files written before the command, relative to its directory; `{run}` is the trained run.
    #[serde(default)]
    files: BTreeMap<String, String>,
    /// Files written as bytes.
    #[serde(default)]
    bytes: BTreeMap<String, Vec<u8>>,
    /// Files or directories removed before the command.
    #[serde(default)]
    remove: Vec<String>,
    /// Files edited before the command: each `[from, to]` replaced once.
    #[serde(default)]
    edit: BTreeMap<String, [String; 2]>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    stdin: Option<String>,
    #[serde(default = "two")]
    code: i32,
    /// Each must appear in what the command printed (stderr, or stdout for a report).
    says: Vec<String>,
}

fn two() -> i32 {
    2
}

/// A directory with `names.txt`, `base.toml` (a bigram) and its finished run `runs/base/…`.
fn template() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    common::experiment(dir.path(), "bigram", "");
    fs::rename(dir.path().join("bigram.toml"), dir.path().join("base.toml")).unwrap();
    let out = common::makemore(
        &["run", "base.toml", "--runs", "runs", "--set", "name=base"],
        dir.path(),
        &[],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let run = common::only_run(&dir.path().join("runs"), "base");
    let run = run.strip_prefix(dir.path()).unwrap().display().to_string();
    (dir, run)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), target).unwrap();
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every file below `dir` but the hidden ones (the lock a command takes) and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let hidden = |path: &Path| path.file_name().unwrap().to_string_lossy().starts_with('.');
    let files = common::snapshot(dir).into_iter();
    files.filter(|(path, _)| !hidden(path)).collect()
}

/// Runs `case` in a copy of the template; what went wrong, if anything.
fn check(case: &Case, template: &Path, run: &str) -> Result<i32, String> {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(template, dir.path());
    // The run's data path is absolute: point it at the copy's data.
    let config = dir.path().join(run).join("config.toml");
    let text = fs::read_to_string(&config).unwrap();
    let (from, to) = (
        template.display().to_string(),
        dir.path().display().to_string(),
    );
    fs::write(&config, text.replace(&from, &to)).unwrap();
    let fill = |s: &str| s.replace("{run}", run);
    for path in &case.remove {
        let path = dir.path().join(fill(path));
        let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
    }
    let mut touched: Vec<PathBuf> = case
        .remove
        .iter()
        .map(|p| dir.path().join(fill(p)))
        .collect();
    for (path, text) in &case.files {
        let path = dir.path().join(fill(path));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, fill(text)).unwrap();
        touched.push(path);
    }
    for (path, [from, to]) in &case.edit {
        let path = dir.path().join(fill(path));
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(from.as_str()), "{}: no {from:?}", case.name);
        fs::write(&path, text.replacen(from.as_str(), to, 1)).unwrap();
        touched.push(path);
    }
    for (path, bytes) in &case.bytes {
        let path = dir.path().join(fill(path));
        fs::write(&path, bytes).unwrap();
        touched.push(path);
    }
    let before = snapshot(&dir.path().join(run));
    let args: Vec<String> = case.args.iter().map(|a| fill(a)).collect();
    let mut command = common::command(dir.path());
    command.args(&args).envs(&case.env);
    let out = match &case.stdin {
        None => command.output().unwrap(),
        Some(text) => common::output_with_input(&mut command, text.as_bytes()),
    };
    let err = common::stderr(&out) + &common::stdout(&out);
    let code = out.status.code().unwrap_or(-1);
    if err.contains("panicked") || code == 101 || code == -1 {
        return Err(format!("panicked or died (exit {code}): {err}"));
    }
    if code != case.code {
        return Err(format!("exit {code}, not {}: {err}", case.code));
    }
    if let Some(missing) = case
        .says
        .iter()
        .map(|s| fill(s))
        .find(|s| !err.contains(s.as_str()))
    {
        return Err(format!("the message does not say {missing:?}: {err}"));
    }
    let after = snapshot(&dir.path().join(run));
    for (path, bytes) in &before {
        let kept = after.get(path) == Some(bytes);
        if !kept && !touched.iter().any(|t| path.starts_with(t)) {
            return Err(format!("{} changed", path.display()));
        }
    }
    Ok(code)
}

/// The kinds of the corpus (its files), with their cases' exit codes and panics.
fn table(counts: &BTreeMap<String, (usize, BTreeMap<i32, usize>)>) -> String {
    let mut text = String::from("| input | cases | exit codes | panics |\n|---|---:|---|---:|\n");
    let mut total = 0;
    for (kind, (cases, codes)) in counts {
        let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        text += &format!("| {kind} | {cases} | {} | 0 |\n", codes.join(", "));
        total += cases;
    }
    text += &format!("| **all** | **{total}** | | **0** |\n");
    text
}

#[test]
fn every_bad_input_gets_a_clear_message_and_its_exit_code() {
    let (template, run) = template();
    let corpus_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_inputs");
    let mut files: Vec<PathBuf> = fs::read_dir(&corpus_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut counts = BTreeMap::new();
    let mut failures = Vec::new();
    for file in files {
        let kind = file
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .replace('_', " ");
        let corpus: Corpus = toml::from_str(&fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let entry: &mut (usize, BTreeMap<i32, usize>) = counts.entry(kind.clone()).or_default();
        for case in &corpus.case {
            match check(case, template.path(), &run) {
                Ok(code) => {
                    entry.0 += 1;
                    *entry.1.entry(code).or_default() += 1;
                }
                Err(why) => failures.push(format!("{kind} / {}: {why}", case.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    let testing = Path::new(env!("CARGO_MANIFEST_DIR")).join("TESTING.md");
    let text = fs::read_to_string(&testing).unwrap();
    let (start, end) = ("<!-- corpus table -->\n", "<!-- end corpus table -->");
    let (head, rest) = text
        .split_once(start)
        .expect("TESTING.md has the corpus table");
    let (old, tail) = rest.split_once(end).unwrap();
    let new = table(&counts);
    if old != new {
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            fs::write(&testing, format!("{head}{start}{new}{end}{tail}")).unwrap();
        }
        panic!("TESTING.md's corpus table is out of date (UPDATE_GOLDEN=1 rewrites it):\n{new}");
    }
}
