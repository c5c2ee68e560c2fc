//! Ctrl-C and SIGTERM (what Slurm sends before a time limit or pre-emption): the first asks the
//! training loop to checkpoint and stop at the end of the current step; a second one exits at
//! once. Checkpoints are written whole and renamed into place, so exiting never damages one.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Exit status after a second signal, as shells report a process ended by SIGINT.
const EXIT_AT_ONCE: i32 = 130;

/// Handles Ctrl-C and SIGTERM from now on; `first` runs at the first of them (to tell the
/// person what happens next).
pub fn install(first: fn()) -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(move || {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_AT_ONCE);
        }
        first();
    })
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
