//! The shipped experiment of each model family, built into the binary: `run --data FILE` trains
//! it on another file from anywhere, and `init` writes it out as a file to edit.

use std::path::{Path, PathBuf};

use super::ModelType;
use crate::error::{Error, Result};
use crate::files::write_atomic;

/// Writes the starter experiment for `kind` on `data` to `file`, which must not exist. The data
/// path is written relative to the file's directory when the data lies below it, else absolute.
pub fn init(file: &Path, data: &Path, kind: ModelType) -> Result<()> {
    if file.exists() {
        return Err(Error::input(format!(
            "{}: exists already; init writes a new file only (name another, or edit this one)",
            file.display()
        )));
    }
    let data = data
        .canonicalize()
        .map_err(|e| Error::input(format!("--data {}: {e}", data.display())))?;
    if !data.is_file() {
        return Err(Error::input(format!(
            "--data {}: not a file",
            data.display()
        )));
    }
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::input(format!("{}: {e}", dir.display())))?;
    let relative = data
        .strip_prefix(&dir)
        .map_or(data.clone(), Path::to_path_buf);
    write_atomic(file, self::file(kind, &relative).as_bytes())
        .map_err(|e| Error::input(format!("{}: cannot write: {e}", file.display())))
}

/// The text of `experiments/<type>.toml`.
pub fn text(kind: ModelType) -> &'static str {
    match kind {
        ModelType::Bigram => include_str!("../../experiments/bigram.toml"),
        ModelType::Counts => include_str!("../../experiments/counts.toml"),
        ModelType::Mlp => include_str!("../../experiments/mlp.toml"),
        ModelType::Cnn => include_str!("../../experiments/cnn.toml"),
        ModelType::Rnn => include_str!("../../experiments/rnn.toml"),
        ModelType::Lstm => include_str!("../../experiments/lstm.toml"),
        ModelType::Gru => include_str!("../../experiments/gru.toml"),
        ModelType::Bow => include_str!("../../experiments/bow.toml"),
        ModelType::Transformer => include_str!("../../experiments/transformer.toml"),
    }
}

/// A starter experiment file for `kind` on `data` (as the file's own directory sees it): the
/// shipped experiment with its data path replaced, and the settings a user of another file
/// reaches for first, commented out.
pub fn file(kind: ModelType, data: &Path) -> String {
    let shipped = text(kind);
    let path = toml::Value::String(data.display().to_string());
    let body: String = shipped
        .lines()
        .map(|line| match line.trim_start().starts_with("path = ") {
            true => format!("path = {path}\n"),
            false => format!("{line}\n"),
        })
        .collect();
    format!(
        "# A starter experiment: makemore's shipped {kind} experiment, on your data.\n\
         # makemore check THIS.toml   validates it and says what it needs; makemore run THIS.toml\n\
         # trains it. Every key and its default: README, \"Experiment file\".\n\n\
         {body}\n{MORE}",
        kind = kind.name()
    )
}

/// What a starter file offers beyond the shipped experiment, commented out.
const MORE: &str = "\
# More that other data may want; each key goes in the table it names.
# [dataset] lowercase = true         lower-case every item
# [dataset] normalize = \"nfc\"        Unicode normalisation: nfc | nfkc (off by default)
# [dataset] dedup = true             drop repeated items before splitting
# [dataset] max_len = 32             drop longer items (long_items = \"truncate\" cuts them)
# [schedule] steps = 2000            optimizer steps
# [sampling] temperature = 0.8       below 1: likelier, more common items; 0: the likeliest
# [sampling] top_p = 0.9             sample from the fewest characters that hold 90%
";
