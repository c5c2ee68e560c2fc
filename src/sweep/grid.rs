//! Grid files: a base experiment, values set on every trial, and the points to try.
//!
//! The trials are the cartesian product of the `[grid]` lists (keys in sorted order, the last
//! varying fastest), each combined with every draw of a `[search]` (`search.rs`), then the
//! hand-picked `[[trial]]` points. Each is resolved and validated like an experiment file before
//! anything runs, and named by a hash of what determines its results.

use std::path::{Path, PathBuf};

use figment::value::Value;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{self, Experiment, Override, line_of};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::memory;

use super::halving::Halving;
use super::search;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    name: Option<String>,
    experiment: PathBuf,
    #[serde(default)]
    set: toml::Table,
    #[serde(default)]
    grid: toml::Table,
    #[serde(default)]
    trial: Vec<toml::Table>,
    search: Option<toml::Table>,
}

pub struct Grid {
    pub name: String,
    pub file: PathBuf,
    /// The grid as resolved: the base experiment's absolute path, the values as parsed.
    pub resolved: String,
    pub trials: Vec<Trial>,
    /// `[search] method = "halving"`: the trials are rungs' members, not run to their end each.
    pub halving: Option<Halving>,
}

pub struct Trial {
    pub index: usize,
    /// Stable: the same resolved configuration and data give the same id, anywhere.
    pub id: String,
    /// The values this trial sets beyond `[set]`, as `key=value`.
    pub point: Vec<String>,
    pub experiment: Experiment,
}

/// A grid file that does not parse: where, and what, in the user's words.
fn grid_error(file: &Path, text: &str, error: &toml::de::Error) -> Error {
    if error.message().contains("missing field `experiment`") {
        return Error::input(format!(
            "{}: no `experiment = \"base.toml\"`: a grid file names the experiment its trials start from",
            file.display()
        ));
    }
    let line = error.span().map_or(String::new(), |span| {
        format!(":{}", text[..span.start].matches('\n').count() + 1)
    });
    Error::input(format!(
        "{}{line}: {}",
        file.display(),
        config::plain_words(error.message().trim())
    ))
}

/// One value a trial sets: key, value, and where the grid file says so.
type Setting = (String, toml::Value, String);

/// Reads and expands the grid in `file`; `sets` apply to every trial, above everything else.
pub fn load(file: &Path, sets: &[String]) -> Result<Grid> {
    let (parsed, file) = read(file)?;
    let name = parsed.name.clone().unwrap_or_else(|| stem(&file));
    config::check_name(&name).map_err(|why| {
        Error::input(format!(
            "{}:{}: name: {why}",
            file.display(),
            line_of(&file, &["name"]).unwrap_or(1)
        ))
    })?;
    let source = Source {
        dir: file.parent().expect("a file has a directory").to_path_buf(),
        file: file.clone(),
    };
    let mut common =
        vec![source.to_override("name", name.clone().into(), file.display().to_string())];
    for (key, value) in config::flatten(parsed.set.clone().into()) {
        common.push(source.to_override(&key, value, source.place("set", &key)));
    }
    let search = match &parsed.search {
        Some(table) => Some(search::parse(table, &|key| source.place("search", key))?),
        None => None,
    };
    check_keys(&parsed, search.as_ref(), &source)?;
    check_size(&parsed, search.as_ref(), &source)?;
    let mut points = product(&parsed.grid, &source)?;
    let mut halving = None;
    if let Some(search) = search {
        if search.trials > 0 {
            points = combine(&search::draw(&search), &points);
        }
        if let Some(h) = search.halving {
            // Every trial's schedule runs to max_steps; the rungs stop it earlier.
            let origin = source.place("search", "max_steps");
            let steps = toml::Value::Integer(h.max_steps as i64);
            common.push(source.to_override("schedule.steps", steps, origin));
            halving = Some(h);
        }
    }
    for (n, extra) in parsed.trial.iter().enumerate() {
        let origin = format!("{}: [[trial]] number {}", file.display(), n + 1);
        let values = config::flatten(extra.clone().into()).into_iter();
        points.push(values.map(|(k, v)| (k, v, origin.clone())).collect());
    }
    let trials = resolve(&parsed.experiment, &common, points, sets, &source)?;
    Ok(Grid {
        name,
        resolved: toml::to_string(&parsed).expect("a grid serialises to TOML"),
        file,
        trials,
        halving,
    })
}

/// Refuses a key that two tables set, where one would silently drop the other's values: `[set]`
/// and `[grid]`, `[set]` and `[search]`, `[grid]` and `[search]`; and, in a halving search,
/// `schedule.steps`, which `max_steps` sets.
fn check_keys(parsed: &GridFile, search: Option<&search::Search>, source: &Source) -> Result<()> {
    let keys = |table: &toml::Table| config::flatten(table.clone().into()).into_keys();
    let mut tables: Vec<(&str, Vec<String>)> = vec![
        ("set", keys(&parsed.set).collect()),
        ("grid", keys(&parsed.grid).collect()),
    ];
    if let Some(search) = search {
        let drawn = search.space.iter().map(|(key, _, _)| key.clone()).collect();
        tables.push(("search", drawn));
    }
    for (i, (first, first_keys)) in tables.iter().enumerate() {
        for (second, second_keys) in &tables[i + 1..] {
            if let Some(key) = first_keys.iter().find(|k| second_keys.contains(k)) {
                return Err(Error::input(format!(
                    "{}: {key} is set both in [{first}] ({}) and in [{second}] ({}): keep one",
                    source.file.display(),
                    source.place(first, key),
                    source.place(second, key),
                )));
            }
        }
    }
    if search.is_some_and(|s| s.halving.is_some())
        && let Some((table, _)) = tables
            .iter()
            .find(|(_, keys)| keys.iter().any(|k| k == "schedule.steps"))
    {
        return Err(Error::input(format!(
            "{}: schedule.steps: a halving search sets every trial's steps to its max_steps ({})",
            source.place(table, "schedule.steps"),
            source.place("search", "max_steps"),
        )));
    }
    Ok(())
}

/// What planning one trial holds in memory, generously: its resolved experiment and its point.
const TRIAL_BYTES: u128 = 16 << 10;

/// Refuses, before expanding it, a grid whose trials could not all be held in memory (a
/// `trials = 1000000000` would end the process with the allocator's abort).
fn check_size(parsed: &GridFile, search: Option<&search::Search>, source: &Source) -> Result<()> {
    let points = config::flatten(parsed.grid.clone().into())
        .values()
        .map(|v| v.as_array().map_or(1, |a| a.len().max(1)) as u128)
        .fold(1u128, |n, len| n.saturating_mul(len));
    let draws = search.map_or(1, |s| s.trials.max(1)) as u128;
    let trials = points.saturating_mul(draws) + parsed.trial.len() as u128;
    let needed = trials.saturating_mul(TRIAL_BYTES);
    let (fits, available) = memory::fits(needed);
    if fits {
        return Ok(());
    }
    let place = match draws > 1 {
        true => source.place("search", "trials"),
        false => source.place("grid", ""),
    };
    Err(Error::input(format!(
        "{place}: {trials} trials would need about {} of memory to plan, {available} available: \
         fewer [search] trials or [grid] values",
        memory::human(needed),
    )))
}

/// The parsed grid file, its base experiment's path made absolute, and the file's absolute path.
fn read(file: &Path) -> Result<(GridFile, PathBuf)> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::input(format!(
            "{}: cannot read the grid file: {e}",
            file.display()
        ))
    })?;
    let mut parsed: GridFile = toml::from_str(&text).map_err(|e| grid_error(file, &text, &e))?;
    let file = file
        .canonicalize()
        .map_err(|e| Error::input(format!("{}: {e}", file.display())))?;
    let dir = file.parent().expect("a file has a directory");
    parsed.experiment = dir.join(&parsed.experiment);
    if !parsed.experiment.is_file() {
        return Err(Error::input(format!(
            "{}:{}: experiment: {}: no such experiment file",
            file.display(),
            line_of(&file, &["experiment"]).unwrap_or(1),
            parsed.experiment.display()
        )));
    }
    Ok((parsed, file))
}

/// The grid file, for tracing each value to its line.
struct Source {
    file: PathBuf,
    dir: PathBuf,
}

impl Source {
    /// `file:line` of `key` in `[table]` (written as a dotted key or as nested tables), or of
    /// the table itself for an empty key.
    fn place(&self, table: &str, key: &str) -> String {
        let file = &self.file;
        if key.is_empty() {
            let line = line_of(file, &[table]).unwrap_or(1);
            return format!("{}:{line}", file.display());
        }
        let line = line_of(file, &[table, key]).or_else(|| {
            line_of(
                file,
                &[&[table][..], &key.split('.').collect::<Vec<_>>()].concat(),
            )
        });
        match line {
            Some(line) => format!("{}:{line}", file.display()),
            None => file.display().to_string(),
        }
    }

    fn to_override(&self, key: &str, value: toml::Value, origin: String) -> Override {
        Override {
            key: key.to_string(),
            value: Value::serialize(value).expect("TOML values serialise"),
            origin,
            dir: self.dir.clone(),
        }
    }
}

/// The cartesian product of the `[grid]` lists: keys in sorted order, the last varying fastest.
fn product(grid: &toml::Table, source: &Source) -> Result<Vec<Vec<Setting>>> {
    let mut points: Vec<Vec<Setting>> = vec![Vec::new()];
    for (key, values) in config::flatten(grid.clone().into()) {
        let origin = source.place("grid", &key);
        let values = match values {
            toml::Value::Array(values) if !values.is_empty() => values,
            _ => {
                return Err(Error::input(format!(
                    "{origin}: grid key {key}: must be a non-empty list of values, as [1, 2]"
                )));
            }
        };
        let mut product = Vec::with_capacity(points.len() * values.len());
        for point in &points {
            for value in &values {
                let mut point = point.clone();
                point.push((key.clone(), value.clone(), origin.clone()));
                product.push(point);
            }
        }
        points = product;
    }
    Ok(points)
}

/// Every draw with every grid point: draw after draw, the grid's points within each (so that a
/// grid of seeds repeats each drawn configuration).
fn combine(draws: &[Vec<Setting>], points: &[Vec<Setting>]) -> Vec<Vec<Setting>> {
    let pairs = draws
        .iter()
        .flat_map(|draw| points.iter().map(move |p| (draw, p)));
    pairs
        .map(|(draw, point)| [&draw[..], &point[..]].concat())
        .collect()
}

/// Each point as an experiment (the base file, `common`, the point, `sets`), checked and named
/// by the hash of its configuration and data. A point that repeats another is left out.
fn resolve(
    base: &Path,
    common: &[Override],
    points: Vec<Vec<Setting>>,
    sets: &[String],
    source: &Source,
) -> Result<Vec<Trial>> {
    let mut data_hashes: Vec<(config::DatasetConfig, String)> = Vec::new();
    let mut trials: Vec<Trial> = Vec::new();
    for point in points {
        let shown: Vec<String> = point.iter().map(|(k, v, _)| format!("{k}={v}")).collect();
        let mut overrides = common.to_vec();
        overrides.extend(
            point
                .into_iter()
                .map(|(k, v, origin)| source.to_override(&k, v, origin)),
        );
        let experiment = config::load_with(base, &overrides, sets)
            .map_err(|e| in_trial(e, trials.len(), &shown))?
            .experiment;
        let data_hash = match data_hashes.iter().find(|(d, _)| *d == experiment.dataset) {
            Some((_, hash)) => hash.clone(),
            None => {
                let hash = Dataset::load(&experiment.dataset)
                    .map_err(|e| in_trial(e, trials.len(), &shown))?
                    .data_hash;
                data_hashes.push((experiment.dataset.clone(), hash.clone()));
                hash
            }
        };
        let id = hex::encode(Sha256::digest(format!(
            "{}\n{data_hash}",
            experiment.identity_hash()
        )))[..12]
            .to_string();
        // A [[trial]] may repeat a grid point: it is the same trial.
        if trials.iter().any(|t| t.id == id) {
            continue;
        }
        trials.push(Trial {
            index: trials.len(),
            id,
            point: shown,
            experiment,
        });
    }
    Ok(trials)
}

fn in_trial(error: Error, index: usize, point: &[String]) -> Error {
    match error {
        Error::Input(message) => {
            Error::input(format!("trial {index} ({}): {message}", point.join(" ")))
        }
        other => other,
    }
}

fn stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sweep".into())
}

impl Grid {
    /// The trials' ids, in index order.
    pub fn ids(&self) -> Vec<String> {
        self.trials.iter().map(|t| t.id.clone()).collect()
    }
}

impl Trial {
    /// The grid keys' values, for `--dry-run`, the progress lines and the manifest.
    pub fn describe(&self) -> String {
        match self.point.is_empty() {
            true => "(base)".into(),
            false => self.point.join(" "),
        }
    }
}
