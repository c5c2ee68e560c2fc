//! Ctrl-C and SIGTERM (what Slurm sends before a time limit or pre-emption): the first asks the
//! training loop to checkpoint and stop at the end of the current step; a second one exits at
//! once. Checkpoints are written whole and renamed into place, so exiting never damages one.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Exit status after a second signal, as shells report a process ended by SIGINT.
const EXIT_AT_ONCE: i32 = 130;

pub fn install() {
    let installed = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_AT_ONCE);
        }
        eprintln!("\nstopping after this step (press Ctrl-C again to exit at once)");
    });
    if let Err(error) = installed {
        eprintln!("warning: Ctrl-C will not checkpoint before stopping: {error}");
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
