//! Every model: its parameter count, causality, that it learns, that a checkpoint reloads exactly.

mod common;

use burn::prelude::*;
use makemore::config::{Experiment, ModelConfig, ModelType};
use makemore::data::Dataset;
use makemore::models::{Mode, Model, target_nll, token_nll};
use makemore::train::evaluate;

type B = burn::backend::Flex;

use common::FAMILIES;

/// A data set with makemore's names.txt shape: 26 letters (vocabulary 27), longest item 15.
fn names_shaped(dir: &std::path::Path) -> Dataset {
    let mut text: String = common::NAMES.join("\n");
    text.push_str("\nabcdefghijklmno\npqrstuvwxyz\n");
    let path = common::write(dir, "shaped.txt", &text);
    let data = Dataset::load(&makemore::config::DatasetConfig {
        path,
        ..Experiment::defaults("t").dataset
    })
    .unwrap();
    assert_eq!((data.vocab.size(), data.seq_len), (27, 16));
    data
}

fn model_config(kind: ModelType) -> ModelConfig {
    ModelConfig {
        kind,
        ..Experiment::defaults("t").model
    }
}

fn build(config: &ModelConfig, data: &Dataset) -> Model<B> {
    Model::new(config, data, 1, &Default::default())
}

#[test]
fn parameter_counts_match_the_references() {
    let dir = tempfile::tempdir().unwrap();
    let data = names_shaped(dir.path());
    // makemore.py's defaults on names.txt.
    assert_eq!(
        build(&model_config(ModelType::Mlp), &data).parameters(),
        69_147
    );
    assert_eq!(
        build(&model_config(ModelType::Bigram), &data).parameters(),
        27 * 27
    );
    assert_eq!(
        build(&model_config(ModelType::Counts), &data).parameters(),
        27 * 27
    );
    // The second lecture's MLP: 27×10 embeddings, 30→200 tanh, 200→27.
    let lecture = ModelConfig {
        block_size: 3,
        blank_token: false,
        n_embd: 10,
        n_embd2: 200,
        ..model_config(ModelType::Mlp)
    };
    assert_eq!(build(&lecture, &data).parameters(), 11_897);
    // makemore.py's other families at its defaults.
    assert_eq!(
        build(&model_config(ModelType::Transformer), &data).parameters(),
        204_544
    );
    assert_eq!(
        build(&model_config(ModelType::Bow), &data).parameters(),
        12_827
    );
    assert_eq!(
        build(&model_config(ModelType::Rnn), &data).parameters(),
        11_803
    );
    assert_eq!(
        build(&model_config(ModelType::Gru), &data).parameters(),
        28_315
    );
    // LSTM: one [x, h] → 4h projection, a learned start for h and c, embeddings, head.
    let (x, h) = (64, 64);
    assert_eq!(
        build(&model_config(ModelType::Lstm), &data).parameters(),
        (x + h + 1) * 4 * h + 2 * h + 27 * x + (h + 1) * 27
    );
    // The lecture's WaveNet: 24-dim embeddings, 128 hidden, three layers (context 8).
    let wavenet = ModelConfig {
        n_layer: 3,
        n_embd: 24,
        n_embd2: 128,
        ..model_config(ModelType::Cnn)
    };
    assert_eq!(build(&wavenet, &data).parameters(), 76_579);
}

fn tokens(values: &[i32]) -> Tensor<B, 2, Int> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [1, values.len()]),
        &Default::default(),
    )
}

fn logits(model: &Model<B>, values: &[i32]) -> Vec<f32> {
    model
        .forward(tokens(values), Mode::Eval)
        .into_data()
        .to_vec()
        .unwrap()
}

/// Every family, small.
fn every_family() -> Vec<ModelConfig> {
    let small = |kind| ModelConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 8,
        n_embd2: 16,
        ..model_config(kind)
    };
    vec![
        model_config(ModelType::Bigram),
        model_config(ModelType::Counts),
        small(ModelType::Mlp),
        ModelConfig {
            block_size: 3,
            blank_token: false,
            ..small(ModelType::Mlp)
        },
        small(ModelType::Cnn),
        ModelConfig {
            n_layer: 3,
            ..small(ModelType::Cnn)
        },
        small(ModelType::Rnn),
        small(ModelType::Gru),
        small(ModelType::Lstm),
        small(ModelType::Bow),
        small(ModelType::Transformer),
    ]
}

#[test]
fn outputs_at_t_do_not_depend_on_later_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let data = names_shaped(dir.path());
    let v = data.vocab.size();
    for config in every_family() {
        let model = build(&config, &data);
        let a = [0, 5, 1, 13, 13, 1, 0, 0];
        for t in 0..a.len() - 1 {
            let mut b = a;
            for (i, token) in b.iter_mut().enumerate().skip(t + 1) {
                *token = ((i * 7 + 3) % v) as i32;
            }
            let (la, lb) = (logits(&model, &a), logits(&model, &b));
            assert_eq!(
                la[..(t + 1) * v],
                lb[..(t + 1) * v],
                "{:?} at t = {t}",
                config.kind
            );
            // (The bigram starts as an all-zero table, which sees nothing at all.)
            if config.kind != ModelType::Bigram {
                assert_ne!(
                    la[(t + 1) * v..],
                    lb[(t + 1) * v..],
                    "{:?}: later outputs must see later inputs",
                    config.kind
                );
            }
        }
    }
}

/// Decoding one position at a time (a Transformer's cached keys and values, a recurrent
/// state carried, a window of the mlp's context) gives at each position the logits the whole
/// forward pass gives there, for sequences of different tokens side by side and as long as
/// the model allows.
#[test]
fn decoding_position_by_position_gives_the_forward_pass() {
    let dir = tempfile::tempdir().unwrap();
    let data = names_shaped(dir.path());
    let (v, t) = (data.vocab.size(), data.seq_len);
    let count = 3;
    let rows: Vec<Vec<i32>> = (0..count)
        .map(|r| {
            (0..t)
                .map(|i| ((r * 11 + i * 5 + i * i) % v) as i32)
                .collect()
        })
        .collect();
    let device = Default::default();
    for config in every_family() {
        let model = build(&config, &data);
        let flat: Vec<i32> = rows.iter().flatten().copied().collect();
        let whole = model.forward(
            Tensor::from_data(TensorData::new(flat, [count, t]), &device),
            Mode::Eval,
        );
        let mut decoder = model.decoder();
        for i in 0..t {
            let column: Vec<i32> = rows.iter().map(|row| row[i]).collect();
            let next = decoder.next(&model, &column, &device);
            let step: Vec<f32> = next.into_data().to_vec().unwrap();
            let at_i = whole.clone().slice([0..count, i..i + 1, 0..v]);
            let expected: Vec<f32> = at_i.into_data().to_vec().unwrap();
            assert_eq!(step.len(), expected.len());
            for (a, b) in step.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-5, "{:?} at {i}: {a} vs {b}", config.kind);
            }
        }
    }
}

/// Dropout is for training only: evaluating a Transformer configured with dropout computes, to
/// the bit, what the same weights without it compute (the fused attention with no keep-factors).
#[test]
fn evaluation_does_not_pay_for_dropout() {
    let dir = tempfile::tempdir().unwrap();
    let data = names_shaped(dir.path());
    let small = every_family().pop().unwrap();
    assert_eq!(small.kind, ModelType::Transformer);
    let with = ModelConfig {
        dropout: 0.1,
        ..small.clone()
    };
    let a = [0, 5, 1, 13, 13, 1, 0, 0];
    assert_eq!(
        logits(&build(&with, &data), &a),
        logits(&build(&small, &data), &a)
    );
}

/// Evaluation's log-probabilities (the bigram's from its table normalised once) are each
/// position's logits normalised: against an f64 log-softmax, and the same losses, bit for bit,
/// as the loss computed from the logits.
#[test]
fn evaluation_normalises_each_positions_logits() {
    let dir = tempfile::tempdir().unwrap();
    let data = names_shaped(dir.path());
    let batch: Vec<i32> = (0..32).map(|i| i * 7 % 27).collect();
    let x = || Tensor::from_data(TensorData::new(batch.clone(), [4, 8]), &Default::default());
    let targets: Tensor<B, 2, Int> = Tensor::from_data(
        TensorData::new((0..32).map(|i: i32| i * 5 % 27).collect(), [4, 8]),
        &Default::default(),
    );
    for config in every_family() {
        let model = build(&config, &data);
        let logits = model.forward(x(), Mode::Eval);
        let ours: Vec<f32> = model.log_probs(x(), None).into_data().to_vec().unwrap();
        let flat: Vec<f32> = logits.clone().into_data().to_vec().unwrap();
        for (row, logged) in flat.chunks(27).zip(ours.chunks(27)) {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let log_sum = row
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .sum::<f64>()
                .ln();
            for (&v, &l) in row.iter().zip(logged) {
                let reference = v as f64 - max - log_sum;
                assert!(
                    (l as f64 - reference).abs() < 1e-5,
                    "{config:?}: {l} vs {reference}"
                );
            }
        }
        let from_logits = token_nll(logits, targets.clone()).0.into_data();
        let from_log_probs = target_nll(model.log_probs(x(), None), targets.clone())
            .0
            .into_data();
        assert_eq!(from_log_probs, from_logits, "{config:?}");
    }
}

/// The mlp and the recurrent cells take the input's share of a layer from per-token tables when
/// a batch has more positions than there are tokens, and multiply the embeddings otherwise:
/// both give the same logits.
#[test]
fn token_tables_and_products_give_the_same_logits() {
    let dir = tempfile::tempdir().unwrap();
    let data = names_shaped(dir.path());
    let rows: Vec<[i32; 8]> = (0..8)
        .map(|r| std::array::from_fn(|i| ((r * 5 + i * 3) % 27) as i32))
        .collect();
    let batch: Vec<i32> = rows.iter().flatten().copied().collect();
    let tabled = [
        ModelType::Mlp,
        ModelType::Rnn,
        ModelType::Gru,
        ModelType::Lstm,
    ];
    for config in every_family()
        .into_iter()
        .filter(|c| tabled.contains(&c.kind))
    {
        let model = build(&config, &data);
        // 64 positions, more than the 27 or 28 tokens: tables. One row of 8: products.
        let batched: Vec<f32> = model
            .forward(
                Tensor::from_data(TensorData::new(batch.clone(), [8, 8]), &Default::default()),
                Mode::Eval,
            )
            .into_data()
            .to_vec()
            .unwrap();
        let one_by_one: Vec<f32> = rows.iter().flat_map(|row| logits(&model, row)).collect();
        assert_eq!(batched.len(), one_by_one.len());
        for (a, b) in batched.iter().zip(&one_by_one) {
            assert!((a - b).abs() < 1e-5, "{config:?}: {a} vs {b}");
        }
    }
}

#[test]
fn a_reloaded_checkpoint_computes_what_the_saved_model_did() {
    let dir = tempfile::tempdir().unwrap();
    for model in FAMILIES {
        let file = common::experiment(dir.path(), model, "");
        let runs = dir.path().join("runs");
        let out = common::makemore(
            &[
                "run",
                file.to_str().unwrap(),
                "--runs",
                runs.to_str().unwrap(),
            ],
            dir.path(),
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
        let run = common::only_run(&runs, model);

        let experiment = makemore::config::load(&run.join("config.toml"), &[])
            .unwrap()
            .experiment;
        let data = Dataset::load(&experiment.dataset).unwrap();
        let checkpoint =
            makemore::checkpoint::Checkpoint::read(&run.join("checkpoints/last.ckpt")).unwrap();
        let fresh = Model::<B>::new(&experiment.model, &data, 99, &Default::default());
        let loaded = checkpoint
            .load_model(fresh.clone(), &Default::default())
            .unwrap();
        // The run evaluated the model it saved on every test item at its end: the reloaded one
        // must give that loss to the last bit.
        let order: Vec<usize> = (0..data.test.len()).collect();
        let batch_size = experiment.schedule.eval_batch_size;
        let device = Default::default();
        let reloaded = evaluate(&loaded, &data.test, &order, batch_size, &data, &device);
        let summary = makemore::rundir::read_summary(&run).unwrap();
        assert_eq!(
            reloaded.map(|e| e.loss),
            summary.test_loss_last,
            "{model}: the reloaded model's test loss"
        );
        if model != "counts" {
            let input = [0, 3, 1, 4, 1, 5];
            assert_ne!(
                logits(&loaded, &input),
                logits(&fresh, &input),
                "{model}: the checkpoint holds trained weights"
            );
        }
        assert_eq!(checkpoint.step, if model == "counts" { 0 } else { 60 });
    }
}

#[test]
fn the_loss_falls_well_below_uniform_on_a_tiny_file() {
    let dir = tempfile::tempdir().unwrap();
    let uniform = (Dataset::load(&makemore::config::DatasetConfig {
        path: common::names_file(dir.path()),
        ..Experiment::defaults("t").dataset
    })
    .unwrap()
    .vocab
    .size() as f64)
        .ln();
    // A table trains fastest with a large step.
    for model in FAMILIES {
        let learning_rate = if model == "bigram" { "0.3" } else { "0.01" };
        let file = common::experiment(dir.path(), model, "");
        let runs = dir.path().join("runs");
        let out = common::makemore(
            &[
                "run",
                file.to_str().unwrap(),
                "--runs",
                runs.to_str().unwrap(),
                "--set",
                "schedule.steps=300",
                "--set",
                &format!("schedule.learning_rate={learning_rate}"),
            ],
            dir.path(),
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
        let summary = makemore::rundir::read_summary(&common::only_run(&runs, model)).unwrap();
        let train = summary.final_train_loss.unwrap();
        assert!(
            train < uniform - 0.8,
            "{model}: train loss {train} vs uniform {uniform}"
        );
    }
}

/// Every float parameter's values, or with `grads` its gradient, in the model's order.
fn flat(model: &Model<B>, grads: Option<&burn::optim::GradientsParams>) -> Vec<Vec<f32>> {
    use burn::module::{ModuleVisitor, Param};
    struct Flat<'a>(Option<&'a burn::optim::GradientsParams>, Vec<Vec<f32>>);
    impl ModuleVisitor<B> for Flat<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let tensor = match self.0 {
                Some(grads) => grads.get::<B, D>(param.id).expect("a gradient"),
                None => param.val(),
            };
            self.1.push(tensor.into_data().to_vec().unwrap());
        }
    }
    let mut flat = Flat(grads, Vec::new());
    model.visit(&mut flat);
    flat.1
}

/// A Transformer of 2 layers of width 16 with 2 heads, and its data.
fn small_transformer(dir: &std::path::Path) -> (ModelConfig, Dataset) {
    let config = ModelConfig {
        n_layer: 2,
        n_embd: 16,
        n_head: 2,
        ..model_config(ModelType::Transformer)
    };
    (config, names_shaped(dir))
}

/// The Transformer trains on each batch in two parts (on two threads where it has them) and
/// sums their gradients: one plain SGD step must move every parameter by the learning rate
/// times the gradient of the whole batch's mean loss.
#[test]
fn a_batch_in_parts_takes_the_whole_batch_gradient_step() {
    use burn::module::AutodiffModule;
    use burn::optim::GradientsParams;
    type Ad = burn::backend::Autodiff<B>;

    let dir = tempfile::tempdir().unwrap();
    let (config, data) = small_transformer(dir.path());
    let mut experiment = Experiment::defaults("t");
    experiment.model = config;
    experiment.schedule.batch_size = 6;
    experiment.schedule.learning_rate = 0.5;
    experiment.schedule.weight_decay = 0.0;
    let device = Default::default();
    let model: Model<Ad> = Model::new(&experiment.model, &data, 1, &device);
    assert_eq!(model.batch_shards(), 2);

    let mut batcher = makemore::data::Batcher::new(3);
    let items = batcher
        .clone()
        .next(&data.train, experiment.schedule.batch_size);
    let (x, y) = makemore::data::batch::<Ad>(&items, data.seq_len, &device);
    let mut dropout = makemore::rng::dropout_rng(1, 1, 0);
    // Every row computed: the step computes only the rows with a target.
    let mode = Mode::Train {
        dropout: &mut dropout,
        targets: None,
    };
    let (sum, count) = makemore::models::nll(model.forward(x, mode), y);
    let whole = GradientsParams::from_grads((sum / count).backward(), &model);

    let before = model.valid();
    experiment.schedule.optimizer = makemore::config::OptimizerKind::Sgd;
    let mut sgd = makemore::optim::ModelOptimizer::new(&experiment.schedule, &model);
    let (after, _) = makemore::train::train_step(
        model,
        &mut sgd,
        &mut batcher,
        1,
        &experiment,
        &data,
        &device,
    );
    let (grads, after, before) = (
        flat(&before, Some(&whole)),
        flat(&after.valid(), None),
        flat(&before, None),
    );
    assert_eq!(grads.len(), after.len());
    let mut worst = 0.0f32;
    for ((g, a), b) in grads
        .iter()
        .flatten()
        .zip(after.iter().flatten())
        .zip(before.iter().flatten())
    {
        let step = (b - a) / 0.5;
        worst = worst.max((step - g).abs() / (g.abs() + 1e-3));
    }
    assert!(worst < 1e-3, "relative difference {worst}");
}

/// The Transformer's optimizer is two, each updating half of the parameters, each update made by
/// one kernel (`FusedAdamW`): two steps of it, its state saved and loaded in between as a
/// checkpoint does, must give burn's own AdamW's parameters bit for bit.
#[test]
fn two_half_optimizers_update_as_one() {
    use burn::module::AutodiffModule;
    use burn::optim::{GradientsParams, Optimizer};
    use makemore::optim::{ModelOptimizer, adamw};
    type Ad = burn::backend::Autodiff<B>;

    let dir = tempfile::tempdir().unwrap();
    let (config, data) = small_transformer(dir.path());
    let schedule = Experiment::defaults("t").schedule;
    let device = Default::default();
    let items = makemore::data::Batcher::new(3).next(&data.train, 6);
    let (x, y) = makemore::data::batch::<Ad>(&items, data.seq_len, &device);
    let grads = |model: &Model<Ad>| {
        let (sum, count) = makemore::models::nll(model.forward(x.clone(), Mode::Eval), y.clone());
        GradientsParams::from_grads((sum / count).backward(), model)
    };
    let model: Model<Ad> = Model::new(&config, &data, 1, &device);

    let mut one = adamw(&schedule).init();
    let mut reference = model.clone();
    for _ in 0..2 {
        let g = grads(&reference);
        reference = one.step(1e-2, reference, g);
    }

    let mut halves = ModelOptimizer::new(&schedule, &model);
    assert!(
        matches!(halves, ModelOptimizer::AdamW(_)),
        "AdamW is the default"
    );
    let g = grads(&model);
    let model = halves.step(1e-2, model, g);
    let saved = halves.encode().unwrap();
    let mut halves = ModelOptimizer::new(&schedule, &model)
        .decode(&saved, &device)
        .unwrap();
    let g = grads(&model);
    let model = halves.step(1e-2, model, g);

    assert!(
        flat(&reference.valid(), None) == flat(&model.valid(), None),
        "the halves' parameters differ from one optimizer's"
    );
}
