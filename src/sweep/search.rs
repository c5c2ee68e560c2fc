//! Random search: a grid file's `[search]` table draws its trials' values from distributions
//! instead of listing them.
//!
//! ```toml
//! [search]
//! method = "random"
//! trials = 20
//! seed = 1
//! "model.n_embd" = [32, 64, 128]                        # a choice
//! "model.dropout" = { uniform = [0.0, 0.2] }
//! "schedule.learning_rate" = { loguniform = [1e-4, 3e-3] }
//! "model.n_layer" = { int = [2, 6] }                    # both ends included
//! ```
//!
//! The draws are a pure function of the table: one generator seeded with `seed`, the keys in
//! sorted order, trial after trial. Drawn reals keep 4 significant digits, so that the values
//! (and the trials' ids) are the same on every machine, whatever its `exp` and `ln` round to.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Experiment;
use crate::error::{Error, Result};

/// Where a key's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    Choice(Vec<toml::Value>),
    Uniform(f64, f64),
    LogUniform(f64, f64),
    Int(i64, i64),
}

/// A `[search]` table as read: its random draws (how many, from which seed, over which keys,
/// each with where the file sets it, for messages) and its successive halving, if any.
#[derive(Debug, Clone)]
pub struct Search {
    pub trials: usize,
    pub seed: u64,
    pub space: Vec<(String, Distribution, String)>,
    pub halving: Option<super::halving::Halving>,
}

/// Keys of `[search]` that are not distributions.
const SETTINGS: [&str; 6] = ["method", "trials", "seed", "eta", "min_steps", "max_steps"];

/// Reads a `[search]` table; `place(key)` says where the file sets `key`.
pub fn parse(table: &toml::Table, place: &dyn Fn(&str) -> String) -> Result<Search> {
    let here = || place("method");
    let halving = match table.get("method").map(|m| m.as_str()) {
        Some(Some("random")) => false,
        Some(Some("halving")) => true,
        Some(Some(other)) => {
            return Err(Error::input(format!(
                "{}: search method {other:?}: expected \"random\" or \"halving\"",
                here()
            )));
        }
        _ => {
            return Err(Error::input(format!(
                "{}: [search] needs method = \"random\" or \"halving\"",
                place("")
            )));
        }
    };
    let count = |key: &str| -> Result<u64> {
        let value = table
            .get(key)
            .ok_or_else(|| Error::input(format!("{}: [search] needs {key} = N", place(""))))?;
        match value.as_integer() {
            Some(n) if n >= 0 => Ok(n as u64),
            _ => Err(Error::input(format!(
                "{}: {key} must be a whole number ≥ 0, got {value}",
                place(key)
            ))),
        }
    };
    let halving = match halving {
        true => Some(
            super::halving::Halving::new(
                count("eta")? as usize,
                count("min_steps")? as usize,
                count("max_steps")? as usize,
            )
            .map_err(|why| Error::input(format!("{}: {why}", place(""))))?,
        ),
        false => None,
    };
    // Halving may rank the [grid]'s points alone: no draws.
    if halving.is_some() && !table.contains_key("trials") {
        return Ok(Search {
            trials: 0,
            seed: 0,
            space: Vec::new(),
            halving,
        });
    }
    let trials = count("trials")?;
    if trials == 0 {
        return Err(Error::input(format!(
            "{}: trials must be at least 1",
            place("trials")
        )));
    }
    let seed = count("seed")?;
    let leaves = Experiment::defaults("search").flatten();
    let is_leaf = |key: &str| leaves.contains_key(key);
    let mut space = Vec::new();
    for (key, value) in table.iter() {
        if !SETTINGS.contains(&key.as_str()) {
            collect(key, value, &is_leaf, place, &mut space)?;
        }
    }
    space.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Search {
        trials: trials as usize,
        seed,
        space,
        halving,
    })
}

/// The distributions below `key`. The value of a setting (`is_leaf`) is one, as is a table of a
/// known kind of distribution; any other table holds dotted keys (`[search.model]
/// n_embd = [32, 64]`).
fn collect(
    key: &str,
    value: &toml::Value,
    is_leaf: &dyn Fn(&str) -> bool,
    place: &dyn Fn(&str) -> String,
    space: &mut Vec<(String, Distribution, String)>,
) -> Result<()> {
    if let toml::Value::Table(table) = value
        && !is_leaf(key)
        && !(table.len() == 1 && KINDS.iter().any(|k| table.contains_key(*k)))
    {
        for (inner, value) in table {
            collect(&format!("{key}.{inner}"), value, is_leaf, place, space)?;
        }
        return Ok(());
    }
    let origin = place(key);
    let distribution = distribution(value)
        .map_err(|why| Error::input(format!("{origin}: search key {key}: {why}")))?;
    space.push((key.to_string(), distribution, origin));
    Ok(())
}

const KINDS: [&str; 3] = ["uniform", "loguniform", "int"];

fn distribution(value: &toml::Value) -> std::result::Result<Distribution, String> {
    let expected = "expected a list of values, or { uniform = [a, b] }, { loguniform = [a, b] } \
                    or { int = [a, b] }";
    if let toml::Value::Array(values) = value {
        return match values.is_empty() {
            true => Err("an empty list: nothing to choose from".into()),
            false => Ok(Distribution::Choice(values.clone())),
        };
    }
    let one = value.as_table().filter(|t| t.len() == 1);
    let Some((kind, bounds)) = one.and_then(|t| t.iter().next()) else {
        return Err(format!("{expected}, got {value}"));
    };
    if !KINDS.contains(&kind.as_str()) {
        return Err(format!("unknown distribution {kind:?}: {expected}"));
    }
    let pair = bounds.as_array().filter(|b| b.len() == 2);
    let Some(pair) = pair else {
        return Err(format!("{kind} needs two bounds [a, b], got {bounds}"));
    };
    if kind == "int" {
        let ints: Option<Vec<i64>> = pair.iter().map(|v| v.as_integer()).collect();
        return match ints.as_deref() {
            Some(&[a, b]) if a <= b => Ok(Distribution::Int(a, b)),
            Some(_) => Err(format!("int needs a ≤ b, got {bounds}")),
            None => Err(format!("int needs whole-number bounds, got {bounds}")),
        };
    }
    let number = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
    let reals: Option<Vec<f64>> = pair.iter().map(number).collect();
    let Some(&[a, b]) = reals.as_deref() else {
        return Err(format!("{kind} needs numbers, got {bounds}"));
    };
    if !(a.is_finite() && b.is_finite() && a <= b) {
        return Err(format!(
            "{kind} needs finite bounds with a ≤ b, got {bounds}"
        ));
    }
    match kind.as_str() {
        "uniform" => Ok(Distribution::Uniform(a, b)),
        "loguniform" if a > 0.0 => Ok(Distribution::LogUniform(a, b)),
        _ => Err(format!("loguniform needs bounds > 0, got {bounds}")),
    }
}

/// The trials' values: `trials` lists of (key, value, where the file sets the key).
pub fn draw(search: &Search) -> Vec<Vec<(String, toml::Value, String)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(search.seed);
    (0..search.trials)
        .map(|_| {
            let space = search.space.iter();
            space
                .map(|(key, distribution, origin)| {
                    (key.clone(), sample(distribution, &mut rng), origin.clone())
                })
                .collect()
        })
        .collect()
}

fn sample(distribution: &Distribution, rng: &mut ChaCha8Rng) -> toml::Value {
    match distribution {
        Distribution::Choice(values) => values[rng.random_range(0..values.len())].clone(),
        Distribution::Uniform(a, b) => {
            toml::Value::Float(significant(a + (b - a) * rng.random::<f64>()))
        }
        Distribution::LogUniform(a, b) => {
            let (ln_a, ln_b) = (a.ln(), b.ln());
            let x = (ln_a + (ln_b - ln_a) * rng.random::<f64>()).exp();
            toml::Value::Float(significant(x.clamp(*a, *b)))
        }
        Distribution::Int(a, b) => toml::Value::Integer(rng.random_range(*a..=*b)),
    }
}

/// `x` to 4 significant digits.
fn significant(x: f64) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    let scale = 10f64.powi(3 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(text: &str) -> Result<Search> {
        let table: toml::Table = toml::from_str(text).unwrap();
        parse(&table, &|key| format!("g.toml [search] {key}"))
    }

    /// Every draw lies in its distribution's range, and a choice or an integer range is covered
    /// evenly (2,000 draws; each of 4 outcomes within 0.05 of a quarter).
    #[test]
    fn draws_lie_in_their_ranges_and_cover_them() {
        let s = search(
            "method = 'random'\ntrials = 2000\nseed = 7\n\
             a = [1, 2, 3, 4]\nb = { uniform = [-1.0, 1.0] }\n\
             c = { loguniform = [1e-4, 1e-2] }\nd = { int = [3, 6] }\n",
        )
        .unwrap();
        let draws = draw(&s);
        assert_eq!(draws.len(), 2000);
        let mut a_counts = [0usize; 4];
        let mut d_counts = [0usize; 4];
        let mut c_below_1e3 = 0;
        for trial in &draws {
            let keys: Vec<&str> = trial.iter().map(|(k, _, _)| k.as_str()).collect();
            assert_eq!(keys, ["a", "b", "c", "d"]);
            a_counts[trial[0].1.as_integer().unwrap() as usize - 1] += 1;
            let b = trial[1].1.as_float().unwrap();
            assert!((-1.0..=1.0).contains(&b));
            let c = trial[2].1.as_float().unwrap();
            assert!((1e-4..=1e-2).contains(&c));
            c_below_1e3 += usize::from(c < 1e-3);
            d_counts[trial[3].1.as_integer().unwrap() as usize - 3] += 1;
        }
        for n in a_counts.into_iter().chain(d_counts) {
            assert!(
                (n as f64 / 2000.0 - 0.25).abs() < 0.05,
                "{a_counts:?} {d_counts:?}"
            );
        }
        // Log-uniform: half the draws below the geometric middle of the range, 1e-3.
        assert!(
            (c_below_1e3 as f64 / 2000.0 - 0.5).abs() < 0.05,
            "{c_below_1e3}"
        );
    }

    /// The same table draws the same values; another seed others.
    #[test]
    fn the_draws_are_a_function_of_the_table() {
        let text = "method = 'random'\ntrials = 5\nseed = 1\n\
                    [schedule]\nlearning_rate = { loguniform = [1e-4, 1e-2] }\n";
        let s = search(text).unwrap();
        assert_eq!(s.space[0].0, "schedule.learning_rate");
        assert_eq!(draw(&s), draw(&search(text).unwrap()));
        let other = search(&text.replace("seed = 1", "seed = 2")).unwrap();
        assert_ne!(draw(&s), draw(&other));
    }

    #[test]
    fn significant_keeps_four_digits() {
        assert_eq!(significant(0.000123456), 0.0001235);
        assert_eq!(significant(1234.5678), 1235.0);
        assert_eq!(significant(-0.5), -0.5);
    }

    #[test]
    fn bad_tables_say_what_is_wrong() {
        let cases = [
            ("method = 'grid'\ntrials = 1\nseed = 1\n", "\"grid\""),
            (
                "method = 'halving'\neta = 1\nmin_steps = 1\nmax_steps = 2\n",
                "eta",
            ),
            (
                "method = 'halving'\neta = 3\nmin_steps = 9\nmax_steps = 2\n",
                "max_steps",
            ),
            ("trials = 1\nseed = 1\n", "method"),
            ("method = 'random'\nseed = 1\n", "trials"),
            (
                "method = 'random'\ntrials = 0\nseed = 1\n",
                "trials must be at least 1",
            ),
            ("method = 'random'\ntrials = 1\nseed = -1\n", "seed must be"),
            (
                "method = 'random'\ntrials = 1\nseed = 1\na = []\n",
                "empty list",
            ),
            (
                "method = 'random'\ntrials = 1\nseed = 1\na = 3\n",
                "expected a list",
            ),
            (
                "method = 'random'\ntrials = 1\nseed = 1\na = { uniform = [2, 1] }\n",
                "a ≤ b",
            ),
            (
                "method = 'random'\ntrials = 1\nseed = 1\na = { loguniform = [0, 1] }\n",
                "bounds > 0",
            ),
            (
                "method = 'random'\ntrials = 1\nseed = 1\na = { int = [1.5, 2] }\n",
                "whole-number",
            ),
            (
                "method = 'random'\ntrials = 1\nseed = 1\nschedule.steps = { intt = [1, 2] }\n",
                "unknown distribution \"intt\"",
            ),
        ];
        for (text, says) in cases {
            let error = search(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
