//! What the binary prints of what the library returns: a run's end, a sweep's events, bench's
//! rows, check's findings. Each function prints facts it is handed; it decides nothing.

use std::path::Path;

use makemore::bench::Figures;
use makemore::check::{Checked, Sized};
use makemore::data::SplitName;
use makemore::progress::format_duration;
use makemore::run::Outcome;
use makemore::say;
use makemore::sweep::halving;
use makemore::sweep::{Best, Event, Handling, RungShown, Trial};

/// The end of a run: its figures, its final samples and where it is.
pub fn say_outcome(outcome: &Outcome) {
    let (dir, summary, samples) = match outcome {
        Outcome::Paused { dir, step } => {
            let dir = dir.display();
            say!("paused at step {step} (--until); go on with: makemore run --resume {dir}");
            return;
        }
        Outcome::AlreadyDone { dir, step } => {
            let dir = dir.display();
            say!(
                "{dir} finished at step {step}; nothing to resume (raise schedule.steps to train longer)"
            );
            return;
        }
        Outcome::Trained {
            dir,
            summary,
            samples,
        } => (dir, summary, samples),
    };
    let figure =
        |v: Option<f64>, decimals: usize| v.map_or("-".into(), |v| format!("{v:.decimals$}"));
    say!(
        "done in {}: {} steps, {} parameters, {} ms/step, {} tokens/s",
        format_duration(summary.wall_s),
        summary.step,
        summary.params,
        figure(summary.ms_per_step, 2),
        figure(summary.tokens_per_s, 0),
    );
    // The losses of the last model and of the selected checkpoint were said as training ended.
    if summary.selected_on() == SplitName::Test {
        say!(
            "  no validation split: the test split chose the checkpoint, so its figure is not held out (as in makemore.py); set dataset.val_fraction for one"
        );
    }
    say!("samples:");
    for (item, mark) in samples {
        say!("  {:<20} {mark}", shown(item));
    }
    say!("run directory: {}", dir.display());
}

/// A sample as people read it: an empty one (the model ended at once) would be a blank.
pub fn shown(item: &str) -> &str {
    match item {
        "" => "(empty)",
        item => item,
    }
}

/// A sweep's events, one line each.
pub fn say_sweep(event: Event) {
    match event {
        Event::Plan { name, trials, dir } => say!("{name}: {trials} trials in {}", dir.display()),
        Event::Planned { trial, action } => say!(
            "{:>4}  {}  {action:<24}  {}",
            trial.index,
            trial.id,
            trial.describe()
        ),
        Event::Command(command) => say!("{command}"),
        Event::Script(path) => {
            let path = path.display();
            say!("wrote {path}; submit it with: sbatch {path}")
        }
        Event::Trial { trial, handling } => say_trial(trial, handling),
        Event::Start {
            name,
            trials,
            done_before,
            to_go,
            jobs,
            threads,
        } => say!(
            "{name}: {trials} trials, {done_before} done before, {to_go} to go, {jobs} at a time with {threads} thread(s) each"
        ),
        Event::Rung {
            rung,
            steps,
            reached,
            members,
            elapsed_s,
        } => say!(
            "[{}] rung {rung}: {reached} of {members} trials at {steps} steps",
            format_duration(elapsed_s)
        ),
        Event::WorkerEnded { index, how } => say!("worker {index} {how}"),
        Event::Ended {
            trial,
            how,
            elapsed_s,
            tally,
            eta_s,
        } => say!(
            "[{}] trial {} {how}: {} done, {} running, {} failed, {} left{}",
            format_duration(elapsed_s),
            trial.index,
            tally.done,
            tally.running,
            tally.failed,
            tally.left,
            eta_s.map_or(String::new(), |s| format!(", eta {}", format_duration(s)))
        ),
        Event::Rungs {
            rungs,
            winner,
            spent,
            full,
            failed,
        } => say_rungs(&rungs, winner, (spent, full), failed),
        Event::Warning(warning) => eprintln!("{warning}"),
        Event::Finished {
            name,
            dir,
            done,
            trials,
            failed,
            best,
        } => say_finished((name, dir), (done, trials), failed, best),
    }
}

/// A grid's end: how many trials are done, why each failed one failed, and its best trial.
fn say_finished(
    (name, dir): (&str, &Path),
    (done, trials): (usize, usize),
    failed: &[(&Trial, String)],
    best: Option<Best>,
) {
    let failures = match failed.len() {
        0 => String::new(),
        n => format!(", {n} failed"),
    };
    say!("{name}: {done} of {trials} trials done{failures}");
    for (trial, why) in failed {
        say!(
            "  trial {} ({}, {}): {why}",
            trial.index,
            trial.id,
            trial.describe()
        );
    }
    if let Some(best) = best {
        let (trial, dir) = (best.trial, dir.display());
        say!(
            "best trial by {}: trial {} ({}, {}), {} {:.4}: {dir}/{}",
            best.on.name(),
            trial.index,
            trial.id,
            trial.describe(),
            best.on.name(),
            best.loss,
            trial.id
        );
        say!("compare them all (seeds aggregated): makemore report {dir}");
    }
}

/// What a worker does with a trial.
fn say_trial(trial: &Trial, handling: Handling) {
    let label = format!("trial {} ({}, {})", trial.index, trial.id, trial.describe());
    match handling {
        Handling::HeldElsewhere { host, pid } => {
            say!("{label}: running elsewhere ({host} pid {pid})")
        }
        Handling::DoneBefore => say!("{label}: done before"),
        Handling::Resuming { status, step } => say!("{label}: {status} at step {step}, going on"),
        Handling::Starting => say!("{label}: starting"),
    }
}

/// A halving search's rungs (each member's best estimate, the promoted marked), its winner, and
/// the training steps it took against every trial trained to the end.
fn say_rungs(
    rungs: &[RungShown],
    winner: Option<&Trial>,
    (spent, full): (usize, usize),
    failed: &[(&Trial, String)],
) {
    for (r, rung) in rungs.iter().enumerate() {
        let state = if rung.complete { "complete" } else { "running" };
        say!(
            "rung {r}: {} trials to {} steps ({state})",
            rung.members.len(),
            rung.steps
        );
        for member in &rung.members {
            let mark = if member.promoted { "  promoted" } else { "" };
            let score = match (member.score, member.failed) {
                (Some(s), _) => format!("{s:.4}"),
                (None, true) => "failed".into(),
                (None, false) => "-".into(),
            };
            let trial = member.trial;
            say!(
                "  trial {:>3} {}  {score}  {}{mark}",
                trial.index,
                trial.id,
                trial.describe()
            );
        }
    }
    if let Some(trial) = winner {
        say!(
            "winner: trial {} ({}, {}), run {}",
            trial.index,
            trial.id,
            trial.describe(),
            trial.id
        );
    }
    say!("{}", halving::compute_line(spent, full));
    for (trial, why) in failed {
        say!("trial {} ({}) failed: {why}", trial.index, trial.id);
    }
}

pub fn bench_row(f: &Figures) -> String {
    // The metrics' seconds beside 2,000 training steps at the measured median step time.
    let two_thousand_steps_s = 2.0 * f.ms_per_step_median;
    let generation = format!(
        "{:.2} ({:.0}%)",
        f.generation_s,
        100.0 * f.generation_s / two_thousand_steps_s
    );
    format!(
        "{:<12} {:>8} {:>22} {:>10.0} {:>11.0} {:>10.0} {:>12.0} {:>17} {:>9}",
        f.model,
        f.params,
        format!(
            "{:.3} ({:.3}-{:.3})",
            f.ms_per_step_median, f.ms_per_step_p10, f.ms_per_step_p90
        ),
        f.train_tokens_per_s,
        f.eval_tokens_per_s,
        f.sample_items_per_s,
        f.sample_chars_per_s,
        generation,
        f.peak_rss_mib.map_or("-".into(), |m| format!("{m:.0}")),
    )
}

/// What `check` found: the resolved experiment, or each trial of a sweep file, with sizes.
pub fn say_checked(checked: &Checked) {
    match checked {
        Checked::Experiment { experiment, sized } => {
            print!("{}", experiment.to_toml());
            // config.toml leaves out max_len when it is 0 (old hashes stay); the check says it.
            if experiment.dataset.max_len == 0 {
                println!("# dataset.max_len = 0: every item whole");
            }
            say_sized(sized, "# ");
        }
        Checked::Sweep {
            file,
            name,
            kind,
            trials,
        } => {
            let file = file.display();
            println!(
                "{file}: a sweep file ({kind}), {} trials, every one valid; runs go to runs/{name}/",
                trials.len()
            );
            let mut lines = std::collections::BTreeSet::new();
            for (trial, sized) in trials {
                let params = sized.params.map_or("-".into(), |p| p.to_string());
                let fits = if sized.fits { "" } else { " (does not fit)" };
                println!(
                    "{:>4}  {}  {params:>8} parameters  {:>9}{fits}  {}",
                    trial.index,
                    trial.id,
                    sized.needs,
                    trial.describe()
                );
                lines.extend(sized.data_lines.iter().cloned());
            }
            lines.iter().for_each(|line| println!("# {line}"));
            println!("run it with: makemore sweep {file}   (--dry-run: what each trial would do)");
        }
    }
}

/// An experiment's size, memory and data lines, each behind `prefix`.
pub fn say_sized(sized: &Sized, prefix: &str) {
    if let Some(params) = sized.params {
        println!("{prefix}{params} parameters");
    }
    let fits = if sized.fits { "" } else { ": it does not fit" };
    println!("{prefix}{}{fits}", sized.memory);
    for line in &sized.data_lines {
        println!("{prefix}{line}");
    }
}
