//! `makemore bench`: how fast each model family trains, evaluates and samples on this machine.
//!
//! Each family runs at makemore.py's default configuration (the cnn at the lecture's sizes) on
//! the given data, through the training loop's own step, evaluation, sampling and generation
//! metrics code. Step
//! times exclude the warm-up steps; peak memory is the process's resident high-water mark, reset
//! before each family.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::AutodiffModule;
use serde::Serialize;

use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::backend::{self, on_backend};
use crate::config::{self, Experiment, Override};
use crate::data::{Batcher, Dataset};
use crate::error::{Error, Result};
use crate::generation;
use crate::models::Model;
use crate::optim::ModelOptimizer;
use crate::rng::{Stream, rng};
use crate::sample::{self, SampleOptions};
use crate::train;

/// The families `makemore bench` measures when none are named.
pub const FAMILIES: &[&str] = &[
    "bigram",
    "mlp",
    "cnn",
    "rnn",
    "gru",
    "lstm",
    "bow",
    "transformer",
];

/// What `makemore bench` was asked for.
#[derive(Debug, Clone)]
pub struct BenchRequest {
    /// Families to measure, comma-separated (default: all but counts).
    pub models: Vec<String>,
    /// The items to train on.
    pub data: PathBuf,
    /// Timed optimizer steps per family.
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// CPU threads; 0 = all cores.
    pub threads: usize,
    /// Items to sample for the sampling figure.
    pub samples: usize,
    /// Override a setting of every family (repeatable), e.g. --set schedule.batch_size=64.
    pub sets: Vec<String>,
    /// Also write the figures as JSON to this file.
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    pub model: String,
    /// The backend, as summary.json names it.
    pub backend: String,
    pub params: usize,
    pub batch_size: usize,
    /// Optimizer steps timed (after the warm-up).
    pub steps: usize,
    pub ms_per_step_median: f64,
    pub ms_per_step_p10: f64,
    pub ms_per_step_p90: f64,
    /// Trained positions per second at the median step time (as a run's `tokens_per_s`: the
    /// batch padded to the longest item; the cnn's and mlp's (context, next) examples).
    pub train_tokens_per_s: f64,
    /// Positions with a target in a training batch of whole items, on average over the training
    /// split: the item's and its end's, not the padding's (which the Transformer skips).
    pub targets_per_step: f64,
    /// Positions per second evaluating the whole test split (each item padded likewise).
    pub eval_tokens_per_s: f64,
    pub sample_items_per_s: f64,
    /// Characters generated per second while sampling them, the stop tokens counted.
    pub sample_chars_per_s: f64,
    /// Seconds to measure the generation metrics at one temperature, as every run does at its
    /// end: `generation.count` samples, the judge fitted, every figure computed.
    pub generation_s: f64,
    /// Resident memory high-water mark while this family ran, in MiB (Linux only).
    pub peak_rss_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub threads: usize,
    pub data: String,
    pub version: String,
    /// The rate of one large f32 matrix product (1024³) with these threads, in GFLOP/s: the
    /// better of one measured before the families and one after, so that on a machine whose
    /// speed moves the floor is the faster state's and the step's ratio to it never flatters.
    pub gemm_gflops: f64,
    pub figures: Vec<Figures>,
}

/// Measures each family the request names, handing each family's figures to `measured` as
/// they come, and returns them all with the machine's.
pub fn bench(request: &BenchRequest, mut measured: impl FnMut(&Figures)) -> Result<Report> {
    let models: Vec<String> = match request.models.is_empty() {
        true => FAMILIES.iter().map(|m| m.to_string()).collect(),
        false => request.models.clone(),
    };
    if request.steps == 0 {
        return Err(Error::input("--steps must be at least 1"));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if request.threads > cores {
        return Err(Error::input(format!(
            "--threads {}: this machine has {cores} cores (0 uses them all)",
            request.threads
        )));
    }
    // Every configuration is checked, its memory too, before the first family runs.
    let mut experiments = Vec::new();
    for model in &models {
        let experiment = experiment(model, request)?;
        let data = Dataset::load(&experiment.dataset)?;
        crate::run::check_memory(&experiment, &data)?;
        experiments.push((experiment, data));
    }
    backend::use_threads(request.threads);
    let threads = rayon::current_num_threads();
    let gemm_before = gemm_gflops();
    let mut figures = Vec::new();
    for (experiment, data) in &experiments {
        let f = measure(experiment, data, request)?;
        measured(&f);
        figures.push(f);
    }
    let report = Report {
        date: chrono::Utc::now().to_rfc3339(),
        cpu: cpu_name(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        threads,
        data: request.data.display().to_string(),
        version: env!("CARGO_PKG_VERSION").into(),
        gemm_gflops: gemm_before.max(gemm_gflops()),
        figures,
    };
    if let Some(path) = &request.json {
        let json = serde_json::to_string_pretty(&report).expect("figures serialise");
        crate::files::write_atomic(path, format!("{json}\n").as_bytes())?;
    }
    Ok(report)
}

impl Report {
    /// The Transformer's step against the machine's matrix-product rate: GFLOP per step, the
    /// milliseconds that takes at that rate, and how many times that the step measured.
    pub fn transformer_floor(&self) -> Option<(f64, f64, f64)> {
        let f = self.figures.iter().find(|f| f.model == "transformer")?;
        // Forward and backward multiply every weight by every position with a target three
        // times: 6 FLOPs per parameter per position. At the rate above, that is the step's
        // floor. (The padding after each item predicts nothing, and is not computed.)
        let gflop = 6.0 * f.params as f64 * f.targets_per_step / 1e9;
        let floor_ms = gflop / self.gemm_gflops * 1e3;
        Some((gflop, floor_ms, f.ms_per_step_median / floor_ms))
    }
}

/// makemore.py's defaults for `model`; the cnn takes the lecture's sizes (makemore.py has none).
fn experiment(model: &str, request: &BenchRequest) -> Result<Experiment> {
    let mut flags = vec![
        Override::flag("model.type", model, "--models"),
        Override::flag("dataset.path", request.data.display().to_string(), "--data"),
    ];
    if model == "cnn" {
        let lecture = [
            ("model.n_embd", 24),
            ("model.n_embd2", 128),
            ("model.n_layer", 3),
        ];
        flags.extend(lecture.map(|(key, value)| Override::flag(key, value, "the cnn's sizes")));
    }
    config::from_flags(&format!("bench-{model}"), &flags, &request.sets)
}

/// The figures of `experiment` on the backend it names (`--set backend.name=...`).
fn measure(experiment: &Experiment, data: &Dataset, request: &BenchRequest) -> Result<Figures> {
    let backend = backend::select(&experiment.backend)?;
    on_backend!(backend, |B, device| measure_on::<B>(
        experiment, data, request, &device
    ))
}

fn measure_on<B: AutodiffBackend>(
    experiment: &Experiment,
    data: &Dataset,
    request: &BenchRequest,
    device: &B::Device,
) -> Result<Figures> {
    reset_peak_memory();
    let model = Model::<B>::new(&experiment.model, data, experiment.seed, device);
    let params = model.parameters();
    let s = &experiment.schedule;
    let optimizer = ModelOptimizer::new(s, &model);
    let (model, times) = time_steps(model, optimizer, experiment, data, request, device);
    let model = model.valid();

    let eval_tokens_per_s = time_evaluation(&model, data, s.eval_batch_size, device);

    let options = SampleOptions::of(&Experiment::defaults("bench").sampling);
    let mut sample_rng = rng(experiment.seed, Stream::Sample, 0);
    let timer = Instant::now();
    let items = sample::generate(
        std::slice::from_ref(&model),
        &data.vocab,
        data.seq_len,
        request.samples,
        &[],
        options,
        &mut sample_rng,
        device,
    );
    let seconds = timer.elapsed().as_secs_f64();
    let sample_items_per_s = request.samples as f64 / seconds;
    // Each item's characters and its stop token: every one a position generated.
    let generated: usize = items.iter().map(|item| item.chars().count() + 1).sum();
    let sample_chars_per_s = generated as f64 / seconds;

    let generation_s = time_generation(&model, experiment, data, options, device);
    let tokens_per_step = train::tokens_per_step(&model, s.batch_size, data.seq_len);
    let targets_per_step =
        s.batch_size as f64 * data.train.targets() as f64 / data.train.len() as f64;
    let median = percentile(&times, 0.5);
    Ok(Figures {
        model: experiment.model.kind.name().into(),
        backend: backend::select(&experiment.backend)?.describe(),
        params,
        batch_size: s.batch_size,
        steps: times.len(),
        ms_per_step_median: median,
        ms_per_step_p10: percentile(&times, 0.1),
        ms_per_step_p90: percentile(&times, 0.9),
        train_tokens_per_s: tokens_per_step as f64 * 1e3 / median,
        targets_per_step,
        eval_tokens_per_s,
        sample_items_per_s,
        sample_chars_per_s,
        generation_s,
        peak_rss_mib: peak_memory_mib(),
    })
}

/// Positions per second evaluating the whole test split, as training counts them (every item
/// padded to the data's longest): the median of at least 3 passes and 0.2 s, since one pass
/// over a small split takes milliseconds.
fn time_evaluation<B: Backend>(
    model: &Model<B>,
    data: &Dataset,
    batch_size: usize,
    device: &B::Device,
) -> f64 {
    let order: Vec<usize> = (0..data.test.len()).collect();
    let positions = data.test.len() * data.seq_len;
    let started = Instant::now();
    let mut times = Vec::new();
    while times.len() < 3 || started.elapsed().as_secs_f64() < 0.2 {
        let timer = Instant::now();
        train::evaluate(model, &data.test, &order, batch_size, data, device);
        times.push(timer.elapsed().as_secs_f64());
    }
    positions as f64 / percentile(&times, 0.5)
}

/// Seconds that the end of a run spends on the generation metrics at one temperature.
fn time_generation<B: Backend>(
    model: &Model<B>,
    experiment: &Experiment,
    data: &Dataset,
    options: SampleOptions,
    device: &B::Device,
) -> f64 {
    let wanted = &experiment.generation;
    let mut rng = rng(experiment.seed, Stream::Generate, 0);
    let timer = Instant::now();
    generation::measure_temperatures(&[options.temperature], data, wanted.judge_order, |t| {
        let options = SampleOptions {
            temperature: t,
            ..options
        };
        let members = std::slice::from_ref(model);
        sample::generate_many(members, data, wanted.count, &[], options, &mut rng, device)
    });
    timer.elapsed().as_secs_f64()
}

/// Milliseconds of each step after the warm-up, and the trained model.
fn time_steps<B: AutodiffBackend>(
    mut model: Model<B>,
    mut optimizer: ModelOptimizer<B>,
    experiment: &Experiment,
    data: &Dataset,
    request: &BenchRequest,
    device: &B::Device,
) -> (Model<B>, Vec<f64>) {
    let mut batcher = Batcher::new(experiment.seed);
    let mut times = Vec::with_capacity(request.steps);
    for step in 1..=request.warmup + request.steps {
        let timer = Instant::now();
        let loss;
        (model, loss) = train::train_step(
            model,
            &mut optimizer,
            &mut batcher,
            step,
            experiment,
            data,
            device,
        );
        // Reading the loss waits for the device to finish the step: the time is the step's.
        loss.value();
        if step > request.warmup {
            times.push(timer.elapsed().as_secs_f64() * 1e3);
        }
    }
    (model, times)
}

/// GFLOP/s of the best of three 1024³ f32 products on the CPU backend.
fn gemm_gflops() -> f64 {
    use burn::prelude::*;
    let device = Default::default();
    let n = 1024;
    let a = Tensor::<burn::backend::Flex, 2>::ones([n, n], &device);
    let b = a.clone() * 0.5;
    let best = (0..3)
        .map(|_| {
            let timer = Instant::now();
            let c = a.clone().matmul(b.clone());
            let _: f32 = c.slice([0..1, 0..1]).into_scalar().elem();
            timer.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (n * n * n) as f64 / best / 1e9
}

fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Linux keeps a resident-memory high-water mark per process; writing 5 to clear_refs resets it.
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|name| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
