//! Optimizers with PyTorch's semantics, and the learning-rate schedule.

use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, SgdConfig, decay::WeightDecayConfig};

use crate::config::{LrSchedule, ScheduleConfig};

/// AdamW with decoupled weight decay, betas and eps set explicitly: burn's defaults differ from
/// PyTorch's (eps 1e-5, weight decay 1e-4, beta2 0.999).
pub fn adamw(s: &ScheduleConfig) -> AdamWConfig {
    AdamWConfig::new()
        .with_beta_1(s.betas[0] as f32)
        .with_beta_2(s.betas[1] as f32)
        .with_epsilon(s.eps as f32)
        .with_weight_decay(s.weight_decay as f32)
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
