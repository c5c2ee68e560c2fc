//! The `makemore` binary: parses the command line, calls the library, prints what it returns.
//! Nothing else in the crate prints, but the progress of a run (progress.rs).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use makemore::bench::{self, BenchRequest};
use makemore::config::{self, ModelType};
use makemore::error::{Error, Result};
use makemore::interchange::{self, ExportRequest, ImportRequest};
use makemore::report::{self, ReportRequest};
use makemore::run;
use makemore::sample::{self, SampleRequest};
use makemore::score::{self, ScoreRequest};
use makemore::signals;
use makemore::sweep::{self, SweepRequest};

mod cli;
mod render;

use cli::{CheckArgs, Cli, Command, InitArgs, RunArgs};
use render::{say_outcome, shown};

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
        Command::Sweep(args) => sweep(&args.into()),
        Command::Sample(args) => sample(args.into()),
        Command::Score(args) => score(args.into()),
        Command::Export(args) => export(args.into()),
        Command::Import(args) => import(&args.into()),
        Command::Report(args) => report(&args.into()),
        Command::Bench(args) => bench(&args.into()),
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
    say_outcome(&ran?);
    Ok(())
}

fn sweep(request: &SweepRequest) -> Result<()> {
    handle_signals();
    sweep::sweep(request, &mut render::say_sweep)
}

fn sample(mut request: SampleRequest) -> Result<()> {
    request.runs = request.runs.iter().map(|run| newest_run(run)).collect();
    let mark = request.mark;
    let note = |line: &str| eprintln!("{line}");
    let measured = sample::sample(&request, note, |item, how| match mark {
        true => println!("{}\t{how}", shown(item)),
        false => println!("{item}"),
    })?;
    if let Some(metrics) = measured {
        eprintln!("{}", metrics.line());
    }
    Ok(())
}

/// A line per input line: the item, its total and per-character log-probability, or `-` where
/// it has none (each such line named on stderr, and the exit code 2 at the end).
fn score(mut request: ScoreRequest) -> Result<()> {
    request.runs = request.runs.iter().map(|run| newest_run(run)).collect();
    if request.split.is_some() {
        return score_split(&request);
    }
    let scored = score::score(&request)?;
    if let Some(note) = &scored.partial {
        eprintln!("{note}");
    }
    let mut unscored = 0;
    for (number, line) in scored.lines.iter().enumerate() {
        match &line.score {
            Ok(score) => println!("{}", score_line(&line.item, score, request.characters)),
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

/// An item and its log-probability, total and per character, then, when asked for, each
/// character's.
fn score_line(item: &str, score: &score::ItemScore, characters: bool) -> String {
    let mut line = format!("{item}\t{:.4}\t{:.4}", score.total, score.per_char);
    if characters {
        let each: Vec<String> = score.characters.iter().map(|c| format!("{c:.4}")).collect();
        line.push('\t');
        line.push_str(&each.join(" "));
    }
    line
}

/// `score --split`: one line, the split's loss over every item with its standard error.
fn score_split(request: &ScoreRequest) -> Result<()> {
    let (loss, partial) = score::score_split(request)?;
    if let Some(note) = &partial {
        eprintln!("{note}");
    }
    let se = loss.se.map_or(String::new(), |se| format!(" ± {se:.4}"));
    let members = match request.runs.len() {
        1 => String::new(),
        n => format!(", an ensemble of {n} runs"),
    };
    println!(
        "{} {:.4}{se} (nats per character over its {} items{members})",
        loss.split.name(),
        loss.loss,
        loss.items
    );
    Ok(())
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
    say_outcome(&interchange::import(request)?);
    Ok(())
}

fn report(request: &ReportRequest) -> Result<()> {
    let report = report::report(request)?;
    let colour = std::io::stdout().is_terminal();
    print!("{}", report::render(&report, request.format, colour)?);
    if let Some(path) = &request.plot {
        eprintln!("plot: {}", path.display());
    }
    if let Some(path) = &request.html {
        eprintln!("page: {}", path.display());
    }
    Ok(())
}

fn bench(request: &BenchRequest) -> Result<()> {
    let mut first = true;
    let report = bench::bench(request, |f| {
        if std::mem::take(&mut first) {
            println!(
                "{:<12} {:>8} {:>22} {:>10} {:>11} {:>10} {:>12} {:>17} {:>9}",
                "model",
                "params",
                "ms/step (p10-p90)",
                "train tok/s",
                "eval tok/s",
                "samples/s",
                "sample ch/s",
                "metrics s (2k st)",
                "peak MiB"
            );
        }
        println!("{}", render::bench_row(f));
    })?;
    println!(
        "{} thread(s) of {} ({} cores); warm-up {} steps, then {} timed",
        report.threads, report.cpu, report.cores, request.warmup, request.steps
    );
    let gflops = report.gemm_gflops;
    println!(
        "f32 matrix product 1024x1024x1024: {gflops:.1} GFLOP/s (the better of before and after \
         the families)"
    );
    println!(
        "tok/s: positions per second, every item padded to the data's longest (the cnn's and \
         mlp's training: examples), in training and in evaluation alike"
    );
    println!(
        "metrics s: the generation metrics at one temperature, as a run ends (generation.count \
         samples, the judge fitted); in brackets, against 2,000 training steps at the median"
    );
    if let Some((gflop, floor_ms, times)) = report.transformer_floor() {
        println!(
            "transformer: {gflop:.2} GFLOP per step (its positions with a target), {floor_ms:.2} ms \
             at that rate; measured {times:.1}x that"
        );
    }
    Ok(())
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
    render::say_checked(&makemore::check::check(&args.file, &args.sets)?);
    Ok(())
}
