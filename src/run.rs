//! `makemore run`: from an experiment file to a finished run directory.
//!
//! Everything that can be wrong with the input (configuration, data, model choice) is checked
//! before the run directory exists, so a bad experiment leaves nothing behind.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use sha2::{Digest, Sha256};

use crate::config::{self, Experiment};
use crate::data::Dataset;
use crate::error::Result;
use crate::models::Model;
use crate::progress::{Progress, format_duration};
use crate::rundir::{RunDir, Status, Summary};
use crate::train::{self, Session};

/// The CPU backend: burn's pure-Rust `flex`, with automatic differentiation on top.
pub type Cpu = Autodiff<Flex>;

/// Runs the experiment in `file` and returns its run directory.
pub fn run(file: &Path, sets: &[String], runs: &Path) -> Result<PathBuf> {
    let experiment = config::load(file, sets)?.experiment;
    let data = Dataset::load(&experiment.dataset)?;
    use_threads(experiment.backend.threads);
    let device = Default::default();
    let model = Model::<Cpu>::new(&experiment.model, &data, experiment.seed, &device);

    let mut run = RunDir::create(runs, &experiment.name)?;
    run.write_config(&experiment.to_toml())?;
    let now = chrono::Utc::now().to_rfc3339();
    let summary = Summary {
        status: Status::Running,
        name: experiment.name.clone(),
        model_type: experiment.model.kind.name().into(),
        params: model.parameters(),
        step: 0,
        steps: if experiment.model.kind == config::ModelType::Counts {
            0
        } else {
            experiment.schedule.steps
        },
        best_test_loss: None,
        final_test_loss: None,
        final_train_loss: None,
        final_val_loss: None,
        ms_per_step: None,
        tokens_per_s: None,
        wall_s: 0.0,
        backend: "cpu (burn flex)".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        config_hash: config_hash(&experiment),
        data_hash: data.data_hash.clone(),
        split_hash: data.split_hash.clone(),
        started_at: now.clone(),
        updated_at: now,
        error: None,
    };
    run.write_summary(&summary)?;
    let run_path = run.path().to_path_buf();
    let mut session = Session {
        progress: Progress::new(summary.steps),
        experiment: &experiment,
        data: &data,
        run: &mut run,
        summary,
        device,
        started: Instant::now(),
    };
    let header = format!(
        "{}: {} model, {} parameters | {} train, {} val, {} test items, vocabulary {} | run {}",
        experiment.name,
        experiment.model.kind.name(),
        session.summary.params,
        data.train.len(),
        data.val.len(),
        data.test.len(),
        data.vocab.size(),
        run_path.display()
    );
    train::say(&mut session, &header)?;

    // A panic inside the training stack must still leave a summary that says the run failed.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let model = train::train(model, &mut session)?;
        let step = session.summary.step;
        train::record_samples(&model.valid(), step, &mut session)
    }))
    .unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        Err(anyhow::anyhow!(
            "internal error: {}",
            message.unwrap_or_else(|| "a panic".into())
        ))
    });
    session.summary.wall_s = session.started.elapsed().as_secs_f64();
    session.summary.updated_at = chrono::Utc::now().to_rfc3339();
    match outcome {
        Ok(samples) => {
            session.summary.status = Status::Done;
            session.run.write_summary(&session.summary)?;
            report(&session.summary, &samples, &run_path);
            Ok(run_path)
        }
        Err(error) => {
            session.summary.status = Status::Failed;
            session.summary.error = Some(format!("{error:#}"));
            session.run.write_summary(&session.summary)?;
            Err(error
                .context(format!("run {} failed", run_path.display()))
                .into())
        }
    }
}

fn report(summary: &Summary, samples: &[(String, &str)], run: &Path) {
    let loss = |l: Option<f64>| l.map_or("-".into(), |l| format!("{l:.4}"));
    println!(
        "done in {}: {} steps, {} parameters, {} ms/step, {} tokens/s",
        format_duration(summary.wall_s),
        summary.step,
        summary.params,
        summary
            .ms_per_step
            .map_or("-".into(), |ms| format!("{ms:.2}")),
        summary
            .tokens_per_s
            .map_or("-".into(), |t| format!("{t:.0}")),
    );
    println!(
        "final loss (nats per character, every item): train {} | val {} | test {} (best test {})",
        loss(summary.final_train_loss),
        loss(summary.final_val_loss),
        loss(summary.final_test_loss),
        loss(summary.best_test_loss)
    );
    println!("samples:");
    for (item, mark) in samples {
        println!("  {item:<20} {mark}");
    }
    println!("run directory: {}", run.display());
}

/// A hash of what determines the results: the resolved configuration without its name and data
/// paths (the data is identified by its own hash).
fn config_hash(experiment: &Experiment) -> String {
    let mut identity = experiment.clone();
    identity.name.clear();
    identity.dataset.path = PathBuf::new();
    identity.dataset.test_path = None;
    hex::encode(Sha256::digest(identity.to_toml()))
}

/// Sizes the thread pool the CPU backend computes on; 0 keeps one thread per core.
fn use_threads(threads: usize) {
    if threads > 0 {
        // Fails only if the pool already exists (a second run in one process): keep that one.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
}
