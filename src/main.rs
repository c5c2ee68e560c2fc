//! The `makemore` binary: parses the command line, calls the library, prints what it returns.
//! Nothing else in the crate prints, but the progress of a run (progress.rs).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use makemore::bench::{self, BenchRequest, Figures};
use makemore::check::{Checked, Sized};
use makemore::config::{self, ModelType};
use makemore::data::SplitName;
use makemore::error::{Error, Result};
use makemore::interchange::{self, ExportRequest, ImportRequest};
use makemore::progress::format_duration;
use makemore::report::{self, ReportRequest};
use makemore::run::{self, Ran};
use makemore::sample::{self, SampleRequest};
use makemore::score::{self, ScoreRequest};
use makemore::sweep::halving::{self, Halving, Rung};
use makemore::sweep::{self, Event, Grid, SweepRequest, Taking, Trial};
use makemore::{say, signals};

mod cli;

use cli::{CheckArgs, Cli, Command, InitArgs, RunArgs};

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap exits 2 on usage errors too; help and version are successes.
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if !cli.command.trains() {
        die_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Sweep(request) => sweep(&request),
        Command::Sample(request) => sample(request),
        Command::Score(request) => score(request),
        Command::Export(request) => export(request),
        Command::Import(request) => import(&request),
        Command::Report(request) => report(&request),
        Command::Bench(request) => bench(&request),
        Command::Check(args) => check(&args),
        Command::Init(args) => init(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match &error {
                Error::Input(message) => eprintln!("error: {message}"),
                Error::Failed(cause) => eprintln!("error: {cause:#}"),
                Error::Interrupted(message) => eprintln!("{message}"),
            }
            ExitCode::from(error.exit_code() as u8)
        }
    }
}

/// Each training step allocates and frees the same large buffers. glibc returns blocks above
/// its mmap threshold to the kernel at once and trims the heap top, so that every step would pay
/// for fresh, zeroed pages again (page faults: see BENCHMARKS.md). Keep them instead.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Output piped into `head` ends the program quietly, as any Unix tool's, rather than make a
/// print panic on the closed pipe (Rust ignores SIGPIPE by default). Not for training (a run or
/// a sweep): its output is a log, and a closed pipe must not stop it (`say!` drops the line).
fn die_on_closed_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// From now on the first Ctrl-C (or SIGTERM) stops training after the current step, with a
/// checkpoint; a second exits at once.
fn handle_signals() {
    let first = || eprintln!("\nstopping after this step (press Ctrl-C again to exit at once)");
    if let Err(error) = signals::install(first) {
        eprintln!("warning: Ctrl-C will not checkpoint before stopping: {error}");
    }
}

/// The run a command works on: `dir`, or the newest run of an experiment's directory
/// (`runs/<name>`), said on stderr so that the output stays clean for pipes.
fn newest_run(dir: &Path) -> PathBuf {
    let (run, chosen) = makemore::rundir::resolve(dir);
    if chosen {
        let (dir, run_shown) = (dir.display(), run.display());
        eprintln!("using the newest run of {dir}: {run_shown}");
    }
    run
}

fn run(args: RunArgs) -> Result<()> {
    handle_signals();
    let ran = match (args.experiment, args.resume, args.data) {
        (_, Some(dir), _) => run::resume(&newest_run(&dir), &args.sets, args.until),
        (Some(experiment), None, _) => run::run(&experiment, &args.sets, &args.runs, args.until),
        (None, None, Some(data)) => {
            run::run_on_data(&data, &args.model, &args.sets, &args.runs, args.until)
        }
        (None, None, None) => unreachable!("clap requires one of them"),
    };
    say_ran(&ran?);
    Ok(())
}

/// The end of a run: its figures, its final samples and where it is.
fn say_ran(ran: &Ran) {
    let (dir, summary, samples) = match ran {
        Ran::Paused { dir, step } => {
            let dir = dir.display();
            say!("paused at step {step} (--until); go on with: makemore run --resume {dir}");
            return;
        }
        Ran::AlreadyDone { dir, step } => {
            let dir = dir.display();
            say!(
                "{dir} finished at step {step}; nothing to resume (raise schedule.steps to train longer)"
            );
            return;
        }
        Ran::Trained {
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
fn shown(item: &str) -> &str {
    match item {
        "" => "(empty)",
        item => item,
    }
}

fn sweep(request: &SweepRequest) -> Result<()> {
    handle_signals();
    sweep::sweep(request, &mut say_sweep)
}

/// A sweep's events, one line each.
fn say_sweep(event: Event) {
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
        Event::Trial { trial, what } => say_trial(trial, what),
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
            grid,
            rungs,
            halving,
            spent,
            full,
            failed,
        } => say_rungs(grid, rungs, halving, (spent, full), failed),
        Event::Warning(warning) => eprintln!("{warning}"),
        Event::Finished {
            name,
            dir,
            done,
            trials,
            failed,
            best,
        } => {
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
    }
}

/// What a worker does with a trial.
fn say_trial(trial: &Trial, what: Taking) {
    let label = format!("trial {} ({}, {})", trial.index, trial.id, trial.describe());
    match what {
        Taking::Elsewhere { host, pid } => say!("{label}: running elsewhere ({host} pid {pid})"),
        Taking::DoneBefore => say!("{label}: done before"),
        Taking::GoingOn { status, step } => say!("{label}: {status} at step {step}, going on"),
        Taking::Starting => say!("{label}: starting"),
    }
}

/// A halving search's rungs (each member's best estimate, the promoted marked), its winner, and
/// the training steps it took against every trial trained to the end.
fn say_rungs(
    grid: &Grid,
    rungs: &[Rung],
    h: &Halving,
    (spent, full): (usize, usize),
    failed: &[(&Trial, String)],
) {
    for (r, rung) in rungs.iter().enumerate() {
        let promoted = match rung.complete {
            true => halving::promoted(rung, h.eta),
            false => Vec::new(),
        };
        let state = if rung.complete { "complete" } else { "running" };
        say!(
            "rung {r}: {} trials to {} steps ({state})",
            rung.members.len(),
            rung.steps
        );
        for (&i, score) in rung.members.iter().zip(&rung.scores) {
            let trial = &grid.trials[i];
            let mark = if promoted.contains(&i) {
                "  promoted"
            } else {
                ""
            };
            let failed = failed.iter().any(|(t, _)| t.index == i);
            let score = match (score, failed) {
                (Some(s), _) => format!("{s:.4}"),
                (None, true) => "failed".into(),
                (None, false) => "-".into(),
            };
            say!(
                "  trial {i:>3} {}  {score}  {}{mark}",
                trial.id,
                trial.describe()
            );
        }
    }
    if let Some(winner) = halving::winner(h, rungs) {
        let trial = &grid.trials[winner];
        say!(
            "winner: trial {winner} ({}, {}), run {}",
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

fn sample(mut request: SampleRequest) -> Result<()> {
    request.run = newest_run(&request.run);
    let mark = request.mark;
    let note = |line: &str| eprintln!("{line}");
    sample::sample(&request, note, |item, how| match mark {
        true => println!("{}\t{how}", shown(item)),
        false => println!("{item}"),
    })
}

/// A line per input line: the item, its total and per-character log-probability, or `-` where
/// it has none (each such line named on stderr, and the exit code 2 at the end).
fn score(mut request: ScoreRequest) -> Result<()> {
    request.run = newest_run(&request.run);
    let scored = score::score(&request)?;
    if let Some(note) = &scored.partial {
        eprintln!("{note}");
    }
    let mut unscored = 0;
    for (number, line) in scored.lines.iter().enumerate() {
        match &line.score {
            Ok((total, per_char)) => println!("{}\t{total:.4}\t{per_char:.4}", line.item),
            Err(_) if line.item.is_empty() => println!(),
            Err(why) => {
                unscored += 1;
                eprintln!("line {}: {:?}: {why}", number + 1, line.item);
                println!("{}\t-\t-", line.item);
            }
        }
    }
    if scored.skipped > 0 {
        eprintln!("left out {} lines the model cannot score", scored.skipped);
    }
    match unscored {
        0 => Ok(()),
        n => Err(Error::input(format!(
            "{n} of {} items could not be scored (named above); --skip-unknown leaves them out",
            scored.lines.len()
        ))),
    }
}

fn export(mut request: ExportRequest) -> Result<()> {
    request.run = newest_run(&request.run);
    let exported = interchange::export(&request)?;
    println!(
        "{}: {} tensors in makemore.py's names (type {})",
        request.safetensors.display(),
        exported.tensors,
        exported.kind
    );
    Ok(())
}

fn import(request: &ImportRequest) -> Result<()> {
    handle_signals();
    say_ran(&interchange::import(request)?);
    Ok(())
}

fn report(request: &ReportRequest) -> Result<()> {
    let report = report::report(request)?;
    let colour = std::io::stdout().is_terminal();
    print!("{}", report::render(&report, request.format, colour)?);
    if let Some(path) = &request.plot {
        eprintln!("plot: {}", path.display());
    }
    Ok(())
}

fn bench(request: &BenchRequest) -> Result<()> {
    let mut first = true;
    let report = bench::bench(request, |f| {
        if std::mem::take(&mut first) {
            println!(
                "{:<12} {:>8} {:>22} {:>10} {:>11} {:>10} {:>9}",
                "model",
                "params",
                "ms/step (p10-p90)",
                "train tok/s",
                "eval tok/s",
                "samples/s",
                "peak MiB"
            );
        }
        println!("{}", bench_row(f));
    })?;
    println!(
        "{} thread(s) of {} ({} cores); warm-up {} steps, then {} timed",
        report.threads, report.cpu, report.cores, request.warmup, request.steps
    );
    let gflops = report.gemm_gflops;
    println!("f32 matrix product 1024x1024x1024: {gflops:.1} GFLOP/s");
    if let Some((gflop, floor_ms, times)) = report.transformer_floor() {
        println!(
            "transformer: {gflop:.2} GFLOP per step, {floor_ms:.2} ms at that rate; measured {times:.1}x that"
        );
    }
    Ok(())
}

fn bench_row(f: &Figures) -> String {
    format!(
        "{:<12} {:>8} {:>22} {:>10.0} {:>11.0} {:>10.0} {:>9}",
        f.model,
        f.params,
        format!(
            "{:.3} ({:.3}-{:.3})",
            f.ms_per_step_median, f.ms_per_step_p10, f.ms_per_step_p90
        ),
        f.train_tokens_per_s,
        f.eval_tokens_per_s,
        f.sample_items_per_s,
        f.peak_rss_mib.map_or("-".into(), |m| format!("{m:.0}")),
    )
}

fn init(args: &InitArgs) -> Result<()> {
    let kind =
        ModelType::from_name(&args.model).map_err(|why| Error::input(format!("--model: {why}")))?;
    config::starter::init(&args.file, &args.data, kind)?;
    let file = args.file.display();
    println!(
        "wrote {file}: the shipped {} experiment on {}",
        kind.name(),
        args.data.display()
    );
    println!("next: makemore check {file}   then: makemore run {file}");
    Ok(())
}

fn check(args: &CheckArgs) -> Result<()> {
    match makemore::check::check(&args.file, &args.sets)? {
        Checked::Experiment { experiment, sized } => {
            print!("{}", experiment.to_toml());
            // config.toml leaves out max_len when it is 0 (old hashes stay); the check says it.
            if experiment.dataset.max_len == 0 {
                println!("# dataset.max_len = 0: every item whole");
            }
            say_sized(&sized, "# ");
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
            for (trial, sized) in &trials {
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
    Ok(())
}

/// An experiment's size, memory and data lines, each behind `prefix`.
fn say_sized(sized: &Sized, prefix: &str) {
    if let Some(params) = sized.params {
        println!("{prefix}{params} parameters");
    }
    let fits = if sized.fits { "" } else { ": it does not fit" };
    println!("{prefix}{}{fits}", sized.memory);
    for line in &sized.data_lines {
        println!("{prefix}{line}");
    }
}
