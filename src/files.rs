//! Whole-file writes that a kill at any moment leaves readable: the old contents or the new,
//! never a mix. Every file a run, a sweep or an export writes whole goes through here.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to a temporary file beside `path`, syncs it, renames it over `path` and syncs
/// the directory, so a reader sees either the old contents or the new, never a mix, and the
/// rename survives a crash. On an error the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    replace(path, bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".").suffix(".tmp");
    // Readable as a plain created file would be (tempfile's default is the owner's alone).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut file = builder.tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    // The directory entry too; a file system that cannot sync a directory has nothing to lose.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Overwrites `path` where it lies, within the blocks it already holds: what a full disk still
/// allows. Not atomic, so only for a run's last word.
pub fn overwrite(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = File::options().write(true).open(path)?;
    file.write_all(bytes)?;
    file.set_len(bytes.len() as u64)?;
    file.sync_all()
}
