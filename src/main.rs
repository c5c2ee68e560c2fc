use std::process::ExitCode;

use clap::Parser;
use makemore::bench::{self, BenchRequest};
use makemore::error::Error;
use makemore::interchange::{self, ImportRequest};
use makemore::report::{self, ReportRequest};
use makemore::sample::{self, SampleOptions, SampleRequest};
use makemore::sweep::{self, SlurmOptions, SweepRequest};
use makemore::{backend, config, run, score, signals};

mod cli;

use cli::{Cli, Command};

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

/// The run a command works on: `dir`, or the newest run of an experiment's directory
/// (`runs/<name>`), said on stderr so that the output stays clean for pipes.
fn newest_run(dir: &std::path::Path) -> std::path::PathBuf {
    let (run, chosen) = makemore::rundir::resolve(dir);
    if chosen {
        eprintln!(
            "using the newest run of {}: {}",
            dir.display(),
            run.display()
        );
    }
    run
}

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
    // Output piped into `head` should end the program quietly, as any Unix tool, rather than
    // make a print panic on the closed pipe (Rust ignores SIGPIPE by default). Not training (a
    // run or a sweep): its output is a log, and a closed pipe must not stop it; its prints
    // ignore the error (`say!`).
    if !matches!(cli.command, Command::Run { .. } | Command::Sweep { .. }) {
        use nix::sys::signal::{SigHandler, Signal, signal};
        // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition.
        let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    }
    let result = match cli.command {
        Command::Run {
            experiment,
            sets,
            runs,
            resume,
        } => {
            signals::install();
            match (experiment, resume) {
                (_, Some(dir)) => run::resume(&newest_run(&dir), &sets),
                (Some(experiment), None) => run::run(&experiment, &sets, &runs),
                (None, None) => unreachable!("clap requires one of them"),
            }
            .map(|_| ())
        }
        Command::Sweep {
            grid,
            sets,
            runs,
            jobs,
            index,
            dry_run,
            fail_fast,
            emit,
            time,
            cpus_per_task,
            mem,
            partition,
            max_parallel,
        } => sweep::sweep_command(&SweepRequest {
            grid,
            sets,
            runs,
            jobs: jobs.into(),
            index,
            dry_run,
            fail_fast,
            emit,
            slurm: SlurmOptions {
                time,
                cpus_per_task,
                mem,
                partition,
                max_parallel,
            },
        }),
        Command::Sample {
            run,
            count,
            temperature,
            top_k,
            top_p,
            prefix,
            seed,
            checkpoint,
            new_only,
            mark,
        } => {
            let options = SampleOptions {
                temperature,
                top_k,
                top_p,
            };
            let checkpoint = checkpoint.name().to_string();
            let request = SampleRequest {
                count,
                options,
                prefix,
                seed,
                checkpoint,
                new_only,
                mark,
            };
            sample::sample_command(&newest_run(&run), &request)
        }
        Command::Score {
            run,
            items,
            checkpoint,
        } => score::score_command(&newest_run(&run), checkpoint.name(), items),
        Command::Export {
            run,
            safetensors,
            checkpoint,
        } => interchange::export_command(&newest_run(&run), checkpoint.name(), &safetensors),
        Command::Import {
            model,
            kind,
            data,
            sets,
            runs,
        } => {
            signals::install();
            interchange::import_command(&ImportRequest {
                weights: model,
                kind,
                data,
                sets,
                runs,
            })
            .map(|_| ())
        }
        Command::Bench {
            models,
            data,
            steps,
            warmup,
            threads,
            samples,
            sets,
            json,
        } => bench::bench_command(&BenchRequest {
            models,
            data,
            steps,
            warmup,
            threads,
            samples,
            sets,
            json,
        }),
        Command::Report {
            dirs,
            format,
            by,
            filters,
            top,
            plot,
        } => {
            let filters = filters
                .iter()
                .map(|f| {
                    f.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| Error::input(format!("--filter {f}: expected KEY=VALUE")))
                })
                .collect::<Result<Vec<_>, _>>();
            filters.and_then(|filters| {
                report::report_command(
                    &dirs,
                    &ReportRequest {
                        format,
                        by,
                        filters,
                        top,
                        plot,
                    },
                )
            })
        }
        Command::Check { file, sets } => config::load(&file, &sets).and_then(|loaded| {
            let experiment = &loaded.experiment;
            backend::select(&experiment.backend)?;
            let data = makemore::data::Dataset::load(&experiment.dataset)?;
            print!("{}", experiment.to_toml());
            let (fits, line) = run::memory_line(experiment, &data);
            println!("# {line}{}", if fits { "" } else { ": it does not fit" });
            Ok(())
        }),
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
