//! Weight averaging: an exponential moving average of the trained weights, kept beside them.
//!
//! After step k the average is `decay · average + (1 − decay) · weights_k`, starting from the
//! initial weights (timm's `ModelEma` without its warm-up): the closed form is
//! `decay^k · w_0 + (1 − decay) · Σ_{i=1..k} decay^(k−i) · w_i`. It never feeds back into
//! training, so the trained weights, and every training loss, are those of a run without it.

use std::collections::VecDeque;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;

use crate::models::Model;

/// The averaged weights, as a model of the same shapes as the trained one.
#[derive(Clone)]
pub struct Average<B: Backend> {
    pub model: Model<B>,
    decay: f64,
}

impl<B: Backend> Average<B> {
    /// An average that starts at `model`'s weights.
    pub fn new(model: Model<B>, decay: f64) -> Self {
        Average { model, decay }
    }

    /// Moves the average toward `weights` (the trained model after a step).
    pub fn update(&mut self, weights: &Model<B>) {
        let mut values = Values(VecDeque::new());
        weights.visit(&mut values);
        let mut mix = Mix {
            values: values.0,
            decay: self.decay,
        };
        self.model = self.model.clone().map(&mut mix);
    }
}

/// Every float parameter's value, in the model's order.
struct Values<B: Backend>(VecDeque<TensorPrimitive<B>>);

impl<B: Backend> ModuleVisitor<B> for Values<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push_back(param.val().into_primitive());
    }
}

/// Each averaged parameter, mixed with the trained value at the same place in the model.
struct Mix<B: Backend> {
    values: VecDeque<TensorPrimitive<B>>,
    decay: f64,
}

impl<B: Backend> ModuleMapper<B> for Mix<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, average, mapper) = param.consume();
        let value = self
            .values
            .pop_front()
            .expect("the same model's parameters");
        let value: Tensor<B, D> = Tensor::from_primitive(value);
        let mixed = average.mul_scalar(self.decay) + value.mul_scalar(1.0 - self.decay);
        Param::from_mapped_value(id, mixed, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Experiment, ModelType};
    use crate::data::Dataset;

    type B = burn::backend::NdArray;

    /// `model` with every element of its j-th parameter set to `value · (j + 1)`, so that a
    /// parameter mixed with another's value shows.
    fn filled(model: &Model<B>, value: f64) -> Model<B> {
        struct Fill(f64, usize);
        impl ModuleMapper<B> for Fill {
            fn map_float<const D: usize>(
                &mut self,
                param: Param<Tensor<B, D>>,
            ) -> Param<Tensor<B, D>> {
                let (id, tensor, mapper) = param.consume();
                self.1 += 1;
                let value = self.0 * self.1 as f64;
                Param::from_mapped_value(id, tensor.zeros_like().add_scalar(value), mapper)
            }
        }
        model.clone().map(&mut Fill(value, 0))
    }

    /// With the weights set by hand to w_i = i² / 7 after step i (w_0 = 3), times j + 1 in the
    /// j-th parameter, the average after k steps is the closed form, computed here in f64, in
    /// every element of every parameter.
    #[test]
    fn the_average_after_k_steps_is_the_closed_form() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.txt");
        std::fs::write(&path, "emma\nolivia\nava\nmia\n").unwrap();
        let mut experiment = Experiment::defaults("t");
        experiment.dataset.path = path;
        experiment.dataset.val_fraction = 0.0;
        experiment.dataset.test_fraction = 0.5;
        experiment.model.kind = ModelType::Mlp;
        let data = Dataset::load(&experiment.dataset).unwrap();
        let device = Default::default();
        let model = Model::<B>::new(&experiment.model, &data, 1, &device);
        let weight = |i: usize| if i == 0 { 3.0 } else { (i * i) as f64 / 7.0 };
        let decay = 0.9;
        let mut average = Average::new(filled(&model, weight(0)), decay);
        let k = 25;
        for i in 1..=k {
            average.update(&filled(&model, weight(i)));
        }
        let closed = decay.powi(k as i32) * weight(0)
            + (1..=k)
                .map(|i| (1.0 - decay) * decay.powi((k - i) as i32) * weight(i))
                .sum::<f64>();
        struct Flat(Vec<Vec<f32>>);
        impl ModuleVisitor<B> for Flat {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                self.0
                    .push(param.val().into_data().to_vec::<f32>().unwrap());
            }
        }
        let mut got = Flat(Vec::new());
        average.model.visit(&mut got);
        let elements: usize = got.0.iter().map(Vec::len).sum();
        assert_eq!(elements, model.num_params());
        for (j, values) in got.0.iter().enumerate() {
            let expected = closed * (j + 1) as f64;
            for &v in values {
                assert!(
                    (v as f64 - expected).abs() < 1e-5 * expected,
                    "{v} vs {expected}"
                );
            }
        }
    }
}
