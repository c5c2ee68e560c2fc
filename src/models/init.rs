//! Parameter initialisation from our own seeded generator, on the host.
//!
//! Burn's backends seed their random ops differently (flex's seed covers one op only), so the
//! weights are drawn here and uploaded: the same seed gives the same model on every backend. The
//! distributions are PyTorch's defaults, which makemore.py relies on.

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::rng::{Stream, rng};

pub struct Init<'a, B: Backend> {
    rng: ChaCha8Rng,
    device: &'a B::Device,
}

impl<'a, B: Backend> Init<'a, B> {
    pub fn new(seed: u64, device: &'a B::Device) -> Self {
        Init {
            rng: rng(seed, Stream::Init, 0),
            device,
        }
    }

    pub fn device(&self) -> &'a B::Device {
        self.device
    }

    pub fn param<const D: usize>(
        &self,
        values: Vec<f32>,
        shape: [usize; D],
    ) -> Param<Tensor<B, D>> {
        Param::from_tensor(Tensor::from_data(
            TensorData::new(values, shape),
            self.device,
        ))
    }

    pub fn constant<const D: usize>(&self, shape: [usize; D], value: f32) -> Param<Tensor<B, D>> {
        self.param(vec![value; shape.iter().product()], shape)
    }

    pub fn uniform<const D: usize>(
        &mut self,
        shape: [usize; D],
        bound: f64,
    ) -> Param<Tensor<B, D>> {
        let values = self.uniform_values(shape.iter().product(), bound);
        self.param(values, shape)
    }

    /// `n` draws from U(-bound, bound), for a parameter that needs adjusting before upload.
    pub fn uniform_values(&mut self, n: usize, bound: f64) -> Vec<f32> {
        let dist = Uniform::new_inclusive(-bound as f32, bound as f32).expect("a finite bound");
        (0..n).map(|_| dist.sample(&mut self.rng)).collect()
    }

    pub fn normal<const D: usize>(&mut self, shape: [usize; D], std: f64) -> Param<Tensor<B, D>> {
        let dist = Normal::new(0.0, std as f32).expect("a finite std");
        let values = (0..shape.iter().product())
            .map(|_| dist.sample(&mut self.rng))
            .collect();
        self.param(values, shape)
    }

    /// PyTorch's `nn.Linear`: weight and bias from U(-1/√d_in, 1/√d_in). Burn stores the
    /// weight as `[d_in, d_out]`.
    pub fn linear(&mut self, d_in: usize, d_out: usize, bias: bool) -> Linear<B> {
        let bound = 1.0 / (d_in as f64).sqrt();
        Linear {
            weight: self.uniform([d_in, d_out], bound),
            bias: bias.then(|| self.uniform([d_out], bound)),
        }
    }

    /// PyTorch's `nn.Embedding`: N(0, 1).
    pub fn embedding(&mut self, n: usize, d: usize) -> Embedding<B> {
        Embedding {
            weight: self.normal([n, d], 1.0),
        }
    }
}
