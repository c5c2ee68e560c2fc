//! Evaluation: the periodic estimate (the same items every time, drawn once from the seed) and
//! the end's evaluation over every item, of the last model and of the selected checkpoint.
//! *Invariant:* when val exists, the test split is read only at the end.

use anyhow::Result;
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::{Session, say};
use crate::checkpoint::Checkpoint;
use crate::data::{self, Dataset, Split, SplitName};
use crate::files::write_atomic;
use crate::generation;
use crate::models::{Model, target_nll};
use crate::optim;
use crate::rng::{Stream, rng};
use crate::rundir::{Kind, MetricRow};
use crate::sample::{self, SampleOptions};
use crate::stats;

/// Whether an estimate beats the best so far. A loss that is not a number never does, so a
/// diverged evaluation cannot become the best.
pub(super) fn improves(loss: f64, best: Option<f64>) -> bool {
    loss.is_finite() && best.is_none_or(|best| loss < best)
}

/// Periodic estimate on at most `eval_batches × eval_batch_size` items of train and of the
/// selection split (the test split is left alone when val chooses). The items are drawn once
/// from the seed, the same at every evaluation, so that two estimates differ by their models
/// and not by their samples. Returns the selection split's loss.
pub(super) fn estimate<B: Backend>(
    model: &Model<B>,
    step: usize,
    lr: f64,
    session: &mut Session<B::Device>,
) -> Result<f64> {
    let selection = session.data.selection_split();
    let select = estimate_items(session);
    let which = [SplitName::Train, selection];
    let rows = Some(Rows::new(lr, Kind::Estimate));
    let [_, val, test] = evaluate_splits(model, step, &which, session, select, rows)?;
    let chosen = match selection {
        SplitName::Val => val,
        _ => test,
    };
    Ok(chosen.expect("the selection split is not empty").loss)
}

/// The weight average's estimate on the selection split's items that `estimate` takes: a row
/// `<split>_ema` in metrics.csv (and the event file) and a line in the log. Returns its loss.
pub(super) fn estimate_average<B: Backend>(
    average: &Model<B>,
    step: usize,
    lr: f64,
    session: &mut Session<B::Device>,
) -> Result<f64> {
    let selection = session.data.selection_split();
    let select = estimate_items(session);
    let rows = Some(Rows {
        suffix: "_ema",
        ..Rows::new(lr, Kind::Estimate)
    });
    let evaluations = evaluate_splits(average, step, &[selection], session, select, rows)?;
    let chosen = evaluations.into_iter().flatten().next();
    Ok(chosen.expect("the selection split is not empty").loss)
}

/// Which items of a split the periodic estimates take: the same every time, drawn from the seed.
fn estimate_items<D>(session: &Session<D>) -> impl Fn(&mut Vec<usize>) + use<D> {
    let s = &session.experiment.schedule;
    let limit = s.eval_batches * s.eval_batch_size;
    let seed = session.experiment.seed;
    move |order: &mut Vec<usize>| {
        order.shuffle(&mut rng(seed, Stream::Evaluate, 0));
        order.truncate(limit);
    }
}

/// The end of a finished run: the last model over every item of each split (the final rows of
/// metrics.csv), then the selected checkpoint over every val and test item, for the summary.
pub(super) fn finish<B: AutodiffBackend>(
    model: &Model<B>,
    session: &mut Session<B::Device>,
) -> Result<()> {
    let step = session.summary.step;
    // The rate of the last update; a fitted model (counts, step 0) had none.
    let lr = match step {
        0 => 0.0,
        _ => optim::learning_rate(&session.experiment.schedule, step - 1),
    };
    let model = model.valid();
    let final_rows = Some(Rows::new(lr, Kind::Final));
    let [train, val, test] =
        evaluate_splits(&model, step, &SplitName::ALL, session, |_| {}, final_rows)?;
    let summary = &mut session.summary;
    summary.final_train_loss = train.map(|e| e.loss);
    summary.final_val_loss = val.map(|e| e.loss);
    summary.test_loss_last = test.map(|e| e.loss);

    // A run without a periodic evaluation (no steps: counts, an import) selects its only model.
    let best_path = session.run.checkpoint_path("best");
    if !best_path.exists() {
        write_atomic(
            &best_path,
            &std::fs::read(session.run.checkpoint_path("last"))?,
        )?;
    }
    let best = Checkpoint::read(&best_path)?;
    let (selected, [_, val, test]) = match best.step == step && !best.best_average {
        true => (model, [train, val, test]),
        false => {
            let best_model = best.load_model(model, &session.device)?;
            let held_out = [SplitName::Val, SplitName::Test];
            let evaluations =
                evaluate_splits(&best_model, best.step, &held_out, session, |_| {}, None)?;
            (best_model, evaluations)
        }
    };
    let summary = &mut session.summary;
    summary.selected_step = Some(best.step);
    summary.val_loss = val.map(|e| e.loss);
    summary.test_loss = test.map(|e| e.loss);
    summary.test_loss_se = test.and_then(|e| e.se);
    let line = summary.selected_line();
    say(session, &line)?;
    measure_generation(&selected, session)
}

/// The selected model's generation metrics at `sampling.temperature` and at the frontier's
/// temperatures: into the summary, the event file and the log.
fn measure_generation<B: Backend>(
    model: &Model<B>,
    session: &mut Session<B::Device>,
) -> Result<()> {
    let experiment = session.experiment;
    let wanted = &experiment.generation;
    if wanted.count == 0 {
        return Ok(());
    }
    let headline = experiment.sampling.temperature;
    let mut frontier = wanted.temperatures.clone();
    frontier.sort_by(f64::total_cmp);
    frontier.dedup();
    let mut temperatures = frontier.clone();
    temperatures.push(headline);
    temperatures.sort_by(f64::total_cmp);
    temperatures.dedup();
    let options = SampleOptions::of(&experiment.sampling);
    let (data, device) = (session.data, &session.device);
    let measured =
        generation::measure_temperatures(&temperatures, data, wanted.judge_order, |temperature| {
            let options = SampleOptions {
                temperature,
                ..options
            };
            let mut rng = rng(experiment.seed, Stream::Generate, 0);
            let members = std::slice::from_ref(model);
            sample::generate_many(members, data, wanted.count, &[], options, &mut rng, device)
        });
    let at = |t: f64| measured.iter().find(|m| m.temperature == t).cloned();
    let summary = &mut session.summary;
    summary.generation = at(headline);
    summary.frontier = frontier.into_iter().filter_map(at).collect();
    (session.run).generation(summary.step, summary.generation.as_ref(), &summary.frontier)?;
    let lines: Vec<String> = measured.iter().map(generation::Metrics::line).collect();
    for line in lines {
        say(session, &line)?;
    }
    Ok(())
}

/// How `evaluate_splits` records its losses: the learning rate beside them, what they are, and
/// what follows each split's name in its rows (`_ema`: the weight average's).
#[derive(Clone, Copy)]
pub(super) struct Rows {
    lr: f64,
    kind: Kind,
    suffix: &'static str,
}

impl Rows {
    fn new(lr: f64, kind: Kind) -> Self {
        Rows {
            lr,
            kind,
            suffix: "",
        }
    }
}

/// Evaluates the `which` splits on the items `select` keeps of each (a loss that is not a
/// number fails the run); with `rows`, records the losses in metrics.csv and logs them on one
/// line. A split not asked for, or empty, gives `None`.
pub(super) fn evaluate_splits<B: Backend>(
    model: &Model<B>,
    step: usize,
    which: &[SplitName],
    session: &mut Session<B::Device>,
    mut select: impl FnMut(&mut Vec<usize>),
    rows: Option<Rows>,
) -> Result<[Option<Evaluation>; 3]> {
    let mut evaluations = [None; 3];
    let mut line = Vec::new();
    for (i, name) in SplitName::ALL.into_iter().enumerate() {
        if !which.contains(&name) {
            continue;
        }
        let split = session.data.split(name);
        let mut order: Vec<usize> = (0..split.len()).collect();
        select(&mut order);
        let batch_size = session.experiment.schedule.eval_batch_size;
        evaluations[i] = evaluate(
            model,
            split,
            &order,
            batch_size,
            session.data,
            &session.device,
        );
        let Some(Evaluation { loss, .. }) = evaluations[i] else {
            continue;
        };
        finite(loss, name, step)?;
        if let Some(Rows { lr, kind, suffix }) = rows {
            let split = format!("{}{suffix}", name.name());
            line.push(format!("{split} {loss:.4}"));
            let metric = MetricRow {
                step,
                split,
                loss,
                lr,
                elapsed_s: session.started.elapsed().as_secs_f64(),
                tokens_per_s: session.summary.tokens_per_s.unwrap_or(0.0),
            };
            session.run.metric(&metric, kind)?;
        }
    }
    if let Some(Rows { kind, .. }) = rows {
        let label = match kind {
            Kind::Final => "last model (nats per character, every item)".to_string(),
            _ => format!("step {step}"),
        };
        say(session, &format!("{label}: {}", line.join(" | ")))?;
    }
    Ok(evaluations)
}

/// Fails the run on a loss that is not a number: like a diverged training loss, it would make
/// every figure after it meaningless (a counts model with no smoothing gives an unseen pair of
/// characters probability 0).
pub(super) fn finite(loss: f64, split: SplitName, step: usize) -> Result<()> {
    match loss.is_finite() {
        true => Ok(()),
        false => anyhow::bail!(
            "step {step}: the {} loss is {loss}; the model gives some {} items probability 0 or \
             diverged (model.smoothing > 0 for counts; a lower schedule.learning_rate?)",
            split.name(),
            split.name()
        ),
    }
}

/// A loss over some items of a split, and how sure it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Token-weighted mean negative log-likelihood (nats per character).
    pub loss: f64,
    /// Its standard error with the items as the sampled units (`None` for a single item).
    pub se: Option<f64>,
}

/// Token-weighted mean negative log-likelihood over the items of `split` at `order`, in batches
/// of `batch_size`, with its standard error.
pub fn evaluate<B: Backend>(
    model: &Model<B>,
    split: &Split,
    order: &[usize],
    batch_size: usize,
    data: &Dataset,
    device: &B::Device,
) -> Option<Evaluation> {
    if order.is_empty() {
        return None;
    }
    let batch = |chunk: &[usize]| {
        let items: Vec<&[usize]> = chunk.iter().map(|&i| split.tokens[i].as_slice()).collect();
        let (x, y) = data::batch::<B>(&items, data.seq_len, device);
        let targets = data::targets_per_row(&items);
        let (nll, counted) = target_nll(model.log_probs(x, Some(&targets)), y);
        let per_item = nll.clone().sum_dim(1).into_data().to_vec::<f32>();
        let sum = nll.sum().into_scalar().elem::<f64>();
        let n = counted.sum().into_scalar().elem::<f64>();
        (sum, n, per_item.expect("f32 losses"))
    };
    // The batches are independent: on the CPU every thread of the pool takes some; their sums
    // are added in order all the same.
    let sums: Vec<(f64, f64, Vec<f32>)> = match crate::backend::is_cpu::<B>() {
        true => order.par_chunks(batch_size).map(batch).collect(),
        false => order.chunks(batch_size).map(batch).collect(),
    };
    let (total, count) = sums.iter().fold((0.0, 0.0), |(total, count), (sum, n, _)| {
        (total + sum, count + n)
    });
    let item_losses = sums
        .iter()
        .flat_map(|(_, _, items)| items)
        .map(|&l| l as f64);
    let item_lengths = order.iter().map(|&i| (split.tokens[i].len() + 1) as f64);
    let items: Vec<(f64, f64)> = item_losses.zip(item_lengths).collect();
    Some(Evaluation {
        loss: total / count,
        se: stats::ratio_standard_error(&items),
    })
}
