//! Layering an experiment from its sources, and pointing at the source of a bad value.
//!
//! Lowest to highest: built-in defaults → the experiment file → a sweep's overrides (its `[set]`
//! and grid point) → `MAKEMORE_SECTION__KEY` environment variables → `--set section.key=value`.
//! Every error names where the offending value came from: the file and line, the environment
//! variable, or the `--set` argument.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::error::{Actual, Kind};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Value;

use super::{Experiment, ModelType, starter};
use crate::error::{Error, Result};

const ENV_PREFIX: &str = "MAKEMORE_";

/// A resolved experiment and the file it was read from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub experiment: Experiment,
    pub file: PathBuf,
}

/// One value a sweep sets on top of the experiment file.
#[derive(Debug, Clone)]
pub struct Override {
    /// Dotted, as `model.n_embd`.
    pub key: String,
    pub value: Value,
    /// Where it was written, for error messages: `grid.toml:12`.
    pub origin: String,
    /// The directory a relative path in it is relative to.
    pub dir: PathBuf,
}

/// Reads `file`, applies the environment and `sets` (`section.key=value`), checks everything and
/// resolves relative data paths against the directory of the file that set them.
pub fn load(file: &Path, sets: &[String]) -> Result<Loaded> {
    load_with(file, &[], sets)
}

/// `load`, with a sweep's `overrides` between the file and the environment.
pub fn load_with(file: &Path, overrides: &[Override], sets: &[String]) -> Result<Loaded> {
    if !file.is_file() {
        return Err(Error::input(format!(
            "{}: no such experiment file",
            file.display()
        )));
    }
    not_a_data_file(file)?;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Loaded {
        experiment: layered(&stem, Base::File(file), overrides, sets)?,
        file: file.to_path_buf(),
    })
}

/// Refuses, with the command that trains on it, a file that is not TOML and not named `.toml`:
/// the data file a newcomer hands to `run` first.
fn not_a_data_file(file: &Path) -> Result<()> {
    let toml_named = file.extension().is_some_and(|e| e == "toml");
    let parses = || std::fs::read_to_string(file).is_ok_and(|t| t.parse::<toml::Table>().is_ok());
    match toml_named || parses() {
        true => Ok(()),
        false => Err(Error::input(format!(
            "{file}: not an experiment file (TOML); to train on a data file of one item per \
             line: makemore run --data {file} [--model TYPE], or write an experiment for it: \
             makemore init EXPERIMENT.toml --data {file}",
            file = file.display()
        ))),
    }
}

/// An experiment named `name` from the defaults, a command's own flags (`import --type`), the
/// environment and `sets`, for commands that take no experiment file.
pub fn from_flags(name: &str, flags: &[Override], sets: &[String]) -> Result<Experiment> {
    layered(name, Base::Defaults, flags, sets)
}

/// The shipped experiment of `kind` (built in) on the data file `data`, named after both
/// (`cities-mlp`), with the environment and `sets` on top: `makemore run --data FILE`.
pub fn on_data(data: &Path, kind: ModelType, sets: &[String]) -> Result<Experiment> {
    let stem = data
        .file_stem()
        .map_or("data".into(), |s| s.to_string_lossy());
    let name = format!("{stem}-{}", kind.name());
    let path = Override::flag("dataset.path", data.display().to_string(), "--data");
    layered(&name, Base::Text(starter::text(kind)), &[path], sets)
}

/// What an experiment is layered on above the built-in defaults.
enum Base<'a> {
    Defaults,
    File(&'a Path),
    /// A built-in experiment's text.
    Text(&'a str),
}

impl Override {
    /// `key` set by a command-line flag such as `--data`; a relative path in it is relative to
    /// the working directory.
    pub fn flag(key: &str, value: impl Into<Value>, flag: &str) -> Self {
        Override {
            key: key.to_string(),
            value: value.into(),
            origin: flag.to_string(),
            dir: PathBuf::new(),
        }
    }
}

fn layered(name: &str, base: Base, overrides: &[Override], sets: &[String]) -> Result<Experiment> {
    let sets = parse_sets(sets)?;
    let mut figment = Figment::from(Serialized::defaults(Experiment::defaults(name)));
    match base {
        Base::Defaults => {}
        Base::File(file) => figment = figment.merge(Toml::file_exact(file)),
        Base::Text(text) => figment = figment.merge(Toml::string(text)),
    }
    for o in overrides {
        figment = figment.merge(Serialized::default(&o.key, &o.value));
    }
    figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
    for (key, value) in &sets {
        figment = figment.merge(Serialized::default(key, value));
    }
    let sources = Sources {
        figment: &figment,
        overrides,
        sets: &sets,
    };

    let mut experiment: Experiment = figment.extract().map_err(|e| sources.explain(e))?;
    experiment
        .validate()
        .and_then(|()| experiment.check_machine())
        .map_err(|(key, why)| {
            let also = sources.also_from(&key, &why, &experiment);
            Error::input(format!("{}: {key} {why}{also}", sources.locate(&key)))
        })?;

    experiment.dataset.path = sources.resolve_path("dataset.path", &experiment.dataset.path)?;
    if let Some(test_path) = &experiment.dataset.test_path {
        experiment.dataset.test_path = Some(sources.resolve_path("dataset.test_path", test_path)?);
    }
    Ok(experiment)
}

/// `section.key=value` pairs; the value is read as TOML (`3`, `1e-3`, `[1, 2]`, `true`) and
/// falls back to a plain string, so `--set model.type=mlp` needs no quotes.
fn parse_sets(sets: &[String]) -> Result<Vec<(String, Value)>> {
    sets.iter()
        .map(|set| {
            let (key, raw) = set.split_once('=').ok_or_else(|| {
                Error::input(format!(
                    "--set {set}: expected KEY=VALUE, e.g. --set schedule.steps=2000"
                ))
            })?;
            let key = key.trim();
            if key.is_empty() {
                return Err(Error::input(format!("--set {set}: the key is empty")));
            }
            let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut table| table.remove("v"))
                .map(|v| Value::serialize(v).expect("TOML values serialise"))
                .unwrap_or_else(|| Value::from(raw.to_string()));
            Ok((key.to_string(), value))
        })
        .collect()
}

struct Sources<'a> {
    figment: &'a Figment,
    overrides: &'a [Override],
    sets: &'a [(String, Value)],
}

impl Sources<'_> {
    /// Where the value of `key` (dotted) came from, as a user would go and fix it.
    /// A key may be reported at a table above the one that was set (`foo` for `--set foo.bar=1`).
    fn locate(&self, key: &str) -> String {
        if let Some((set, _)) = self.sets.iter().rev().find(|(set, _)| within(set, key)) {
            return format!("--set {set}");
        }
        let meta = self.figment.find_metadata(key);
        if let Some(o) = self.last_override(key)
            && !meta.is_some_and(|m| m.name.contains("environment"))
        {
            return o.origin.clone();
        }
        match meta {
            Some(meta) => match &meta.source {
                Some(figment::Source::File(path)) => match key_line(path, key) {
                    Some(line) => format!("{}:{line}", path.display()),
                    None => path.display().to_string(),
                },
                _ if meta.name.contains("environment") => env_var(key),
                _ => format!("the built-in default of {key}"),
            },
            None => key.to_string(),
        }
    }

    /// Where the other keys that `why` names came from, when a value is wrong only beside them
    /// (`model.n_head` beside `model.n_embd`): "; model.n_embd is from --set model.n_embd".
    fn also_from(&self, key: &str, why: &str, experiment: &Experiment) -> String {
        let mut keys = experiment.keys();
        keys.dedup();
        keys.into_iter()
            .filter(|other| other != key && names_key(why, other))
            .map(|other| match self.locate(&other) {
                place if place.starts_with("the built-in default") => {
                    format!("; {other} is the built-in default")
                }
                place => format!("; {other} is from {place}"),
            })
            .collect()
    }

    fn last_override(&self, key: &str) -> Option<&Override> {
        self.overrides.iter().rev().find(|o| within(&o.key, key))
    }

    fn explain(&self, error: figment::Error) -> Error {
        let messages: Vec<String> = error
            .into_iter()
            .map(|e| {
                let key = e.path.join(".");
                let place = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                    Some(figment::Source::File(file)) => match key_line(file, &key) {
                        Some(line) => format!("{}:{line}", file.display()),
                        None => file.display().to_string(),
                    },
                    _ => self.locate(&key),
                };
                let why = in_words(&e.kind);
                match (key.is_empty(), syntax_error(&why)) {
                    (true, Some((line, column, what, snippet))) => {
                        format!("{place}:{line}:{column}: {what}\n{snippet}")
                    }
                    (true, None) => format!("{place}: {why}"),
                    (false, _) => format!("{place}: {key}: {why}"),
                }
            })
            .collect();
        Error::input(messages.join("\n"))
    }

    /// Relative paths resolve against the directory of the file that set them; paths from the
    /// environment, `--set` or the defaults resolve against the working directory.
    fn resolve_path(&self, key: &str, path: &Path) -> Result<PathBuf> {
        let meta = self.figment.find_metadata(key);
        let from_env = meta.is_some_and(|m| m.name.contains("environment"));
        let base = if self.sets.iter().any(|(set, _)| set == key) || from_env {
            PathBuf::new()
        } else if let Some(o) = self.last_override(key) {
            o.dir.clone()
        } else {
            match meta.and_then(|m| m.source.as_ref()) {
                Some(figment::Source::File(file)) => {
                    file.parent().map(Path::to_path_buf).unwrap_or_default()
                }
                _ => PathBuf::new(),
            }
        };
        let joined = base.join(path);
        joined.canonicalize().map_err(|e| {
            Error::input(format!(
                "{}: {key}: {}: {e}",
                self.locate(key),
                joined.display()
            ))
        })
    }
}

/// The line, the column, the message and the quoted source of the toml parser's "TOML parse
/// error at line L, column C", so that a syntax error is placed as every other error is
/// (`file:line:column: what`).
fn syntax_error(message: &str) -> Option<(usize, usize, String, String)> {
    let rest = message.strip_prefix("TOML parse error at line ")?;
    let (line, rest) = rest.split_once(", column ")?;
    let (column, rest) = rest.split_once('\n')?;
    let (snippet, what): (Vec<&str>, Vec<&str>) = rest
        .lines()
        .filter(|l| !l.trim().is_empty())
        .partition(|l| l.contains('|'));
    Some((
        line.parse().ok()?,
        column.parse().ok()?,
        what.join("; "),
        snippet.join("\n"),
    ))
}

/// Whether `text` names the dotted `key` as a whole word (not `model.n_embd` in `model.n_embd2`).
fn names_key(text: &str, key: &str) -> bool {
    text.match_indices(key).any(|(at, _)| {
        let next = text[at + key.len()..].chars().next();
        !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Whether the dotted key `set` is `key` or lies below it.
fn within(set: &str, key: &str) -> bool {
    set == key
        || set
            .strip_prefix(key)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// What is wrong with a value, in a user's words: the accepted names with the closest one
/// suggested, a number's kind said as a number's ("a whole number ≥ 0", not "usize").
fn in_words(kind: &Kind) -> String {
    let names = |names: &[&str]| names.join(", ");
    let guess = |found: &str, among: &[&str]| {
        did_you_mean(found, among).map_or(String::new(), |g| format!("; did you mean {g:?}?"))
    };
    match kind {
        Kind::UnknownVariant(found, among) => format!(
            "{found:?} is not one of the accepted values{} (they are: {})",
            guess(found, among),
            names(among)
        ),
        Kind::UnknownField(found, among) => format!(
            "no such key{} (the keys here: {})",
            guess(found, among),
            names(among)
        ),
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!(
                "expected {}, found {}",
                expected_words(expected),
                actual_words(actual)
            )
        }
        Kind::InvalidLength(n, expected) => {
            format!("expected {}, found {n}", expected_words(expected))
        }
        other => plain_words(&other.to_string()),
    }
}

/// serde's name of an expected type, as a user says it.
fn expected_words(expected: &str) -> String {
    match expected {
        "usize" | "u64" | "u32" => "a whole number ≥ 0".into(),
        "f64" | "f32" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a string" => "a string in quotes".into(),
        other if other.starts_with("enum ") => "a string (one of the accepted names)".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other => match other.strip_prefix("an array of length ") {
            Some(n) => format!("a list of {n} values"),
            None => plain_words(other),
        },
    }
}

/// A found value, without serde's names for its kind.
fn actual_words(actual: &Actual) -> String {
    match actual {
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(x) => x.to_string(),
        Actual::Bool(b) => b.to_string(),
        Actual::Str(s) => format!("{s:?}"),
        Actual::Seq => "a list".into(),
        Actual::Map => "a table".into(),
        other => other.to_string(),
    }
}

/// The accepted name closest to a misspelt `found`, when one is close enough to be meant.
pub fn did_you_mean<'a>(found: &str, among: &[&'a str]) -> Option<&'a str> {
    // A swap, a missing or an extra letter per three: "mpl" for mlp, "transformr", "modle".
    let allowed = (found.chars().count() / 3).max(1);
    among
        .iter()
        .map(|&name| (strsim::damerau_levenshtein(found, name), name))
        .filter(|&(distance, _)| distance <= allowed)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name)
}

/// serde's message without the program's own type names ("expected enum ModelType").
pub fn plain_words(message: &str) -> String {
    let mut out = message.to_string();
    for (kind, words) in [
        ("struct", "a table"),
        ("enum", "a string (one of the accepted names)"),
    ] {
        while let Some(at) = out.find(&format!("expected {kind} ")) {
            let name_start = at + "expected ".len() + kind.len() + 1;
            let name_end = out[name_start..]
                .find(|c: char| !c.is_alphanumeric())
                .map_or(out.len(), |n| name_start + n);
            out.replace_range(at..name_end, &format!("expected {words}"));
        }
    }
    out
}

fn env_var(key: &str) -> String {
    format!(
        "environment variable {ENV_PREFIX}{}",
        key.replace('.', "__").to_uppercase()
    )
}

/// The 1-based line of a dotted key in a TOML file, for error messages.
fn key_line(file: &Path, key: &str) -> Option<usize> {
    let parts: Vec<&str> = key.split('.').collect();
    line_of(file, &parts)
}

/// The 1-based line of the key at `parts` (one per table level) in a TOML file.
pub fn line_of(file: &Path, parts: &[&str]) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    let document = toml_edit::ImDocument::parse(text.as_str()).ok()?;
    let mut table: &dyn toml_edit::TableLike = document.as_table();
    let (last, parents) = parts.split_last()?;
    let mut span = None;
    for part in parents {
        let (found, item) = table.get_key_value(part)?;
        span = found.span();
        table = item.as_table_like()?;
    }
    let span = table
        .get_key_value(last)
        .and_then(|(k, _)| k.span())
        .or(span)?;
    Some(text[..span.start].matches('\n').count() + 1)
}
