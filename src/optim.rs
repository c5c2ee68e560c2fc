//! Optimizers with PyTorch's semantics, and the learning-rate schedule.

use std::collections::{HashMap, HashSet};

use burn::module::{ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, GradientsParams, LearningRate,
    MultiGradientsParams, Optimizer, Sgd, SgdConfig, SimpleOptimizer, decay::WeightDecayConfig,
};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::backend::AutodiffBackend;

use crate::checkpoint;
use crate::config::{LrSchedule, OptimizerKind, ScheduleConfig};
use crate::models::{AdamWUpdate, Model, adamw_update};

/// AdamW with decoupled weight decay, betas and eps set explicitly: burn's defaults differ from
/// PyTorch's (eps 1e-5, weight decay 1e-4, beta2 0.999).
pub fn adamw(s: &ScheduleConfig) -> AdamWConfig {
    AdamWConfig::new()
        .with_beta_1(s.betas[0] as f32)
        .with_beta_2(s.betas[1] as f32)
        .with_epsilon(s.eps as f32)
        .with_weight_decay(s.weight_decay as f32)
}

/// Burn's AdamW (as `adamw` configures it) with each parameter's update made by one kernel on
/// the CPU backend, `adamw_update`, which gives the same bits; burn's own elsewhere. Its state
/// is burn's AdamW's, so a checkpoint holds the same record.
#[derive(Clone)]
pub struct FusedAdamW {
    burn: AdamW,
    betas: [f32; 2],
    epsilon: f32,
    weight_decay: f32,
}

impl FusedAdamW {
    fn new(s: &ScheduleConfig) -> Self {
        FusedAdamW {
            burn: adamw(s).build(),
            betas: s.betas.map(|b| b as f32),
            epsilon: s.eps as f32,
            weight_decay: s.weight_decay as f32,
        }
    }
}

impl<B: Backend> SimpleOptimizer<B> for FusedAdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let moments = (state.as_ref()).map(|s| [&s.momentum.moment_1, &s.momentum.moment_2]);
        let time = state.as_ref().map_or(1, |s| s.momentum.time + 1);
        // Each constant as burn's AdamW computes it: the corrections in f32, the decay in f64.
        let update = AdamWUpdate {
            betas: self.betas,
            epsilon: self.epsilon,
            corrections: self.betas.map(|b| 1.0 - b.powi(time as i32)),
            learning_rate: lr as f32,
            decay: (1.0 - lr * self.weight_decay as f64) as f32,
        };
        match adamw_update(&update, &tensor, &grad, moments) {
            Some([m, v, tensor]) => {
                let momentum = AdaptiveMomentumState::new(time, m, v);
                (tensor, Some(AdamWState::new(momentum)))
            }
            None => self.burn.step(lr, tensor, grad, state),
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <AdamW as SimpleOptimizer<B>>::to_device(state, device)
    }
}

/// SGD as PyTorch's: weight decay is an L2 term added to the gradient, plain momentum.
pub fn sgd(s: &ScheduleConfig) -> SgdConfig {
    SgdConfig::new()
        .with_weight_decay((s.weight_decay > 0.0).then_some(WeightDecayConfig {
            penalty: s.weight_decay as f32,
        }))
        .with_momentum((s.momentum > 0.0).then_some(MomentumConfig {
            momentum: s.momentum,
            dampening: 0.0,
            nesterov: false,
        }))
}

/// The experiment's optimizer, AdamW or SGD (burn's are distinct types: this is the one place
/// that matches on the kind), each as a `TwoThreadOptimizer`.
pub enum ModelOptimizer<B: AutodiffBackend> {
    AdamW(TwoThreadOptimizer<OptimizerAdaptor<FusedAdamW, Model<B>, B>>),
    Sgd(TwoThreadOptimizer<OptimizerAdaptor<Sgd<B::InnerBackend>, Model<B>, B>>),
}

impl<B: AutodiffBackend> ModelOptimizer<B> {
    /// The optimizer `s` configures, for `model`'s parameters.
    pub fn new(s: &ScheduleConfig, model: &Model<B>) -> Self {
        match s.optimizer {
            OptimizerKind::Adamw => {
                let make = || OptimizerAdaptor::from(FusedAdamW::new(s));
                Self::AdamW(TwoThreadOptimizer::new(make, model))
            }
            OptimizerKind::Sgd => Self::Sgd(TwoThreadOptimizer::new(|| sgd(s).init(), model)),
        }
    }

    /// One update of `model` by `grads` at the learning rate `lr`.
    pub fn step(&mut self, lr: f64, model: Model<B>, grads: GradientsParams) -> Model<B> {
        match self {
            Self::AdamW(optimizer) => optimizer.step(lr, model, grads),
            Self::Sgd(optimizer) => optimizer.step(lr, model, grads),
        }
    }

    /// Its state, as a checkpoint holds it.
    pub fn encode(&self) -> anyhow::Result<Vec<u8>> {
        match self {
            Self::AdamW(optimizer) => checkpoint::encode::<B, _>(optimizer.to_record()),
            Self::Sgd(optimizer) => checkpoint::encode::<B, _>(optimizer.to_record()),
        }
    }

    /// The same optimizer with the state a checkpoint holds.
    pub fn decode(self, bytes: &[u8], device: &B::Device) -> anyhow::Result<Self> {
        Ok(match self {
            Self::AdamW(optimizer) => {
                Self::AdamW(optimizer.load_record(checkpoint::decode::<B, _>(bytes, device)?))
            }
            Self::Sgd(optimizer) => {
                Self::Sgd(optimizer.load_record(checkpoint::decode::<B, _>(bytes, device)?))
            }
        })
    }
}

/// Two optimizers of one kind, each updating its half of the parameters, side by side on two
/// threads where there are two: burn's optimizers update one parameter after another, on one
/// thread. Their state is saved as one optimizer's would be, so checkpoints do not depend on the
/// split.
#[derive(Clone)]
pub struct TwoThreadOptimizer<O> {
    optimizers: [O; 2],
    /// The parameters the first optimizer updates; the second updates the rest.
    first: HashSet<ParamId>,
}

impl<O> TwoThreadOptimizer<O> {
    /// `make()` twice, for `model`'s parameters split in two halves of about equal size when
    /// the model trains on parts of a batch in parallel; else all for the first.
    pub fn new<B: Backend>(make: impl Fn() -> O, model: &Model<B>) -> Self {
        let mut sizes = Sizes(Vec::new());
        model.visit(&mut sizes);
        let total: usize = sizes.0.iter().map(|(_, n)| n).sum();
        let half = match model.batch_shards() {
            1 => total,
            _ => total / 2,
        };
        let mut taken = 0;
        let first = sizes
            .0
            .into_iter()
            .take_while(|&(_, n)| {
                taken += n;
                taken - n < half
            })
            .map(|(id, _)| id)
            .collect();
        TwoThreadOptimizer {
            optimizers: [make(), make()],
            first,
        }
    }
}

/// Each float parameter's id and number of values, in the model's order.
struct Sizes(Vec<(ParamId, usize)>);

impl<B: Backend> ModuleVisitor<B> for Sizes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push((param.id, param.shape().num_elements()));
    }
}

impl<B, O, R> Optimizer<Model<B>, B> for TwoThreadOptimizer<O>
where
    B: AutodiffBackend,
    O: Optimizer<Model<B>, B>,
    // Burn's optimizers keep their state as a map from parameter to record.
    O::Record: IntoIterator<Item = (ParamId, R)> + FromIterator<(ParamId, R)>,
    O::Record: Default + Extend<(ParamId, R)>,
{
    type Record = O::Record;

    fn step(&mut self, lr: LearningRate, model: Model<B>, mut grads: GradientsParams) -> Model<B> {
        let mut second = Move {
            first: &self.first,
            from: &mut grads,
            to: GradientsParams::new(),
        };
        model.visit(&mut second);
        let second = second.to;
        let [a, b] = &mut self.optimizers;
        if second.is_empty() {
            return a.step(lr, model, grads);
        }
        let copy = model.clone();
        let (updated, theirs) =
            rayon::join(|| a.step(lr, model, grads), || b.step(lr, copy, second));
        let mut values = Values(HashMap::new());
        theirs.visit(&mut values);
        updated.map(&mut Merge {
            first: &self.first,
            values: values.0,
        })
    }

    fn step_multi(&mut self, _: LearningRate, _: Model<B>, _: MultiGradientsParams) -> Model<B> {
        unimplemented!("gradients from several devices: the training loop has one")
    }

    fn to_record(&self) -> Self::Record {
        let [a, b] = &self.optimizers;
        let mine = |id: &ParamId, index: usize| self.first.contains(id) == (index == 0);
        let a = a.to_record().into_iter().filter(|(id, _)| mine(id, 0));
        let b = b.to_record().into_iter().filter(|(id, _)| mine(id, 1));
        a.chain(b).collect()
    }

    fn load_record(self, record: Self::Record) -> Self {
        let (a, b): (O::Record, O::Record) = record
            .into_iter()
            .partition(|(id, _)| self.first.contains(id));
        let [first_optimizer, second_optimizer] = self.optimizers;
        TwoThreadOptimizer {
            optimizers: [
                first_optimizer.load_record(a),
                second_optimizer.load_record(b),
            ],
            first: self.first,
        }
    }
}

/// Moves the gradients of the second half's parameters from `from` to `to`.
struct Move<'a> {
    first: &'a HashSet<ParamId>,
    from: &'a mut GradientsParams,
    to: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Move<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !self.first.contains(&param.id)
            && let Some(grad) = self.from.remove::<B::InnerBackend, D>(param.id)
        {
            self.to.register(param.id, grad);
        }
    }
}

/// Every float parameter's value, by id.
struct Values<B: Backend>(HashMap<ParamId, TensorPrimitive<B>>);

impl<B: Backend> ModuleVisitor<B> for Values<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.insert(param.id, param.val().into_primitive());
    }
}

/// Takes the second half's parameters from `values`, the second optimizer's result.
struct Merge<'a, B: Backend> {
    first: &'a HashSet<ParamId>,
    values: HashMap<ParamId, TensorPrimitive<B>>,
}

impl<B: Backend> ModuleMapper<B> for Merge<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = match self.first.contains(&id) {
            true => tensor,
            false => Tensor::from_primitive(self.values.remove(&id).expect("the same model")),
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// The learning rate for the update at `step` (0-based).
///
/// A pure function of the step rather than burn's stateful schedulers: it covers multi-step
/// milestones, which burn's step scheduler does not, and a resumed run needs only the step.
pub fn learning_rate(s: &ScheduleConfig, step: usize) -> f64 {
    if step < s.warmup_steps {
        return s.learning_rate * (step + 1) as f64 / s.warmup_steps as f64;
    }
    match s.lr_schedule {
        LrSchedule::Constant => s.learning_rate,
        LrSchedule::Step => {
            let passed = s.milestones.iter().filter(|&&m| step >= m).count();
            s.learning_rate * s.gamma.powi(passed as i32)
        }
        LrSchedule::Cosine => {
            let span = s.steps.saturating_sub(s.warmup_steps).max(1) as f64;
            let progress = ((step - s.warmup_steps) as f64 / span).min(1.0);
            s.min_lr
                + 0.5
                    * (s.learning_rate - s.min_lr)
                    * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Experiment;

    #[test]
    fn schedules() {
        let mut s = Experiment::defaults("t").schedule;
        s.learning_rate = 0.1;
        assert_eq!(learning_rate(&s, 123), 0.1);

        s.lr_schedule = LrSchedule::Step;
        s.milestones = vec![100, 200];
        assert_eq!(learning_rate(&s, 99), 0.1);
        assert!((learning_rate(&s, 100) - 0.01).abs() < 1e-12);
        assert!((learning_rate(&s, 250) - 0.001).abs() < 1e-12);

        s.lr_schedule = LrSchedule::Cosine;
        s.steps = 110;
        s.warmup_steps = 10;
        s.min_lr = 0.0;
        assert!((learning_rate(&s, 0) - 0.01).abs() < 1e-12);
        assert!((learning_rate(&s, 9) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&s, 10) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&s, 60) - 0.05).abs() < 1e-12);
        assert!(learning_rate(&s, 110).abs() < 1e-12);
    }
}
