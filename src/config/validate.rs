//! Whether an experiment's values agree with each other, key by key: what `config::load` and a
//! run directory's config.toml both go through. Returns the offending key and what is wrong.

use super::{
    BackendName, DatasetConfig, Experiment, GenerationConfig, ModelConfig, ModelType,
    SamplingConfig, ScheduleConfig, check_name,
};

impl Experiment {
    /// Checks that values agree with each other. Returns the offending key and what is wrong.
    /// Every configuration goes through it, a run directory's config.toml too.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_name(&self.name).map_err(|why| ("name".to_string(), why))?;
        self.check_numbers()?;
        self.dataset.validate()?;
        self.model.validate(self.schedule.batch_size)?;
        check(
            cfg!(feature = "cuda") || self.backend.name != BackendName::Cuda,
            "backend.name",
            "\"cuda\" is not available in this build, which has the CPU backend only; \
             rebuild with `cargo build --release --features cuda`"
                .into(),
        )?;
        self.schedule.validate()?;
        self.sampling.validate()?;
        self.generation.validate()
    }

    /// What this machine can do: no more threads than it has cores (rayon aborts the process
    /// when it cannot start a pool of a million). Not part of `validate`: a run trained on a
    /// larger machine can still be sampled here.
    pub fn check_machine(&self) -> Result<(), Invalid> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        check(
            self.backend.threads <= cores,
            "backend.threads",
            format!(
                "must be at most the {cores} cores of this machine (0 uses them all), got {}",
                self.backend.threads
            ),
        )
    }

    /// Every number is one TOML can hold and arithmetic can use: whole numbers up to 2^63 - 1
    /// (config.toml must be able to write them back), and no infinity or NaN anywhere.
    fn check_numbers(&self) -> Result<(), Invalid> {
        let value = serde_json::to_value(self).expect("an experiment serialises to JSON");
        let mut leaves = Vec::new();
        json_leaves("", &value, &mut leaves);
        for (key, leaf) in leaves {
            match leaf {
                serde_json::Value::Number(n) if n.as_u64().is_some_and(|n| n > i64::MAX as u64) => {
                    return Err((key, format!("must be at most {}, got {n}", i64::MAX)));
                }
                // serde_json writes a non-finite float as null (so it would an unset optional
                // key, but every one is left out when unset: `dataset.test_path`).
                serde_json::Value::Null => {
                    return Err((key, "must be a finite number".to_string()));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The leaves of a JSON value by dotted key (an array's elements under the array's key).
pub(super) fn json_leaves(
    prefix: &str,
    value: &serde_json::Value,
    out: &mut Vec<(String, serde_json::Value)>,
) {
    let join = |key: &str| match prefix {
        "" => key.to_string(),
        _ => format!("{prefix}.{key}"),
    };
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                json_leaves(&join(key), value, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                json_leaves(prefix, item, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// A value that does not agree with the others: its dotted key, and what is wrong.
pub type Invalid = (String, String);

fn check(ok: bool, key: &str, why: String) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err((key.to_string(), why))
    }
}

impl DatasetConfig {
    fn validate(&self) -> Result<(), Invalid> {
        check(
            (0.0..1.0).contains(&self.test_fraction),
            "dataset.test_fraction",
            format!("must be in [0, 1), got {}", self.test_fraction),
        )?;
        check(
            (0.0..1.0).contains(&self.val_fraction),
            "dataset.val_fraction",
            format!("must be in [0, 1), got {}", self.val_fraction),
        )?;
        check(
            self.test_path.is_some() || self.test_fraction + self.val_fraction < 1.0,
            "dataset.val_fraction",
            format!(
                "test_fraction + val_fraction must be below 1 to leave items for training, got {} + {}",
                self.test_fraction, self.val_fraction
            ),
        )
    }
}

impl ModelConfig {
    /// `batch_size`: the cnn's BatchNorm needs two rows at least.
    fn validate(&self, batch_size: usize) -> Result<(), Invalid> {
        for (key, value) in [
            ("model.n_embd", self.n_embd),
            ("model.n_embd2", self.n_embd2),
        ] {
            check(value > 0, key, "must be at least 1".into())?;
        }
        if matches!(self.kind, ModelType::Transformer) {
            check(self.n_head > 0, "model.n_head", "must be at least 1".into())?;
            check(
                self.n_embd.is_multiple_of(self.n_head),
                "model.n_head",
                format!(
                    "{} does not divide model.n_embd = {} (each head takes an equal share of \
                     the width)",
                    self.n_head, self.n_embd
                ),
            )?;
        }
        if matches!(self.kind, ModelType::Cnn) {
            check(
                (1..=10).contains(&self.n_layer),
                "model.n_layer",
                format!(
                    "must be in 1..=10 for the cnn (its context is 2^n_layer), got {}",
                    self.n_layer
                ),
            )?;
            check(
                batch_size >= 2,
                "schedule.batch_size",
                "must be at least 2 for the cnn: its BatchNorm takes statistics over the batch"
                    .into(),
            )?;
        }
        check(
            (0.0..1.0).contains(&self.dropout),
            "model.dropout",
            format!("must be in [0, 1), got {}", self.dropout),
        )?;
        check(
            self.smoothing >= 0.0,
            "model.smoothing",
            format!("must be ≥ 0, got {}", self.smoothing),
        )
    }
}

impl SamplingConfig {
    fn validate(&self) -> Result<(), Invalid> {
        check(
            self.temperature >= 0.0,
            "sampling.temperature",
            format!(
                "must be ≥ 0 (0: the likeliest character every time), got {}",
                self.temperature
            ),
        )?;
        check(
            self.top_p > 0.0 && self.top_p <= 1.0,
            "sampling.top_p",
            format!("must be in (0, 1], got {}", self.top_p),
        )?;
        check(
            self.max_len == 0 || self.min_len <= self.max_len,
            "sampling.min_len",
            format!(
                "{} is above sampling.max_len = {}",
                self.min_len, self.max_len
            ),
        )
    }
}

impl GenerationConfig {
    fn validate(&self) -> Result<(), Invalid> {
        check(
            self.temperatures.iter().all(|&t| t >= 0.0),
            "generation.temperatures",
            format!(
                "must all be ≥ 0 (0: the likeliest character every time), got {:?}",
                self.temperatures
            ),
        )?;
        check(
            self.temperatures.len() <= 100,
            "generation.temperatures",
            format!("at most 100 of them, got {}", self.temperatures.len()),
        )?;
        check(
            (1..=8).contains(&self.judge_order),
            "generation.judge_order",
            format!(
                "must be 1 to 8 characters (5: four of context), got {}",
                self.judge_order
            ),
        )
    }
}

impl ScheduleConfig {
    fn validate(&self) -> Result<(), Invalid> {
        let s = self;
        check(
            s.batch_size > 0,
            "schedule.batch_size",
            "must be at least 1".into(),
        )?;
        check(
            s.learning_rate > 0.0 && s.learning_rate.is_finite(),
            "schedule.learning_rate",
            format!("must be a finite number > 0, got {}", s.learning_rate),
        )?;
        check(
            s.weight_decay >= 0.0,
            "schedule.weight_decay",
            format!("must be ≥ 0, got {}", s.weight_decay),
        )?;
        check(
            s.betas.iter().all(|b| (0.0..1.0).contains(b)),
            "schedule.betas",
            format!("both must be in [0, 1), got {:?}", s.betas),
        )?;
        check(
            s.eps > 0.0,
            "schedule.eps",
            format!("must be > 0, got {}", s.eps),
        )?;
        check(
            (0.0..1.0).contains(&s.ema_decay),
            "schedule.ema_decay",
            format!(
                "must be in [0, 1) (0: no weight averaging), got {}",
                s.ema_decay
            ),
        )?;
        check(
            (0.0..1.0).contains(&s.momentum),
            "schedule.momentum",
            format!("must be in [0, 1), got {}", s.momentum),
        )?;
        check(
            s.min_lr >= 0.0 && s.min_lr <= s.learning_rate,
            "schedule.min_lr",
            format!(
                "must be in [0, learning_rate = {}], got {}",
                s.learning_rate, s.min_lr
            ),
        )?;
        check(
            s.milestones.windows(2).all(|w| w[0] < w[1]),
            "schedule.milestones",
            format!("must be strictly increasing, got {:?}", s.milestones),
        )?;
        check(
            s.gamma > 0.0,
            "schedule.gamma",
            format!("must be > 0, got {}", s.gamma),
        )?;
        check(
            s.eval_every > 0,
            "schedule.eval_every",
            "must be at least 1".into(),
        )?;
        check(
            s.eval_batches > 0,
            "schedule.eval_batches",
            "must be at least 1".into(),
        )?;
        check(
            s.eval_batch_size > 0,
            "schedule.eval_batch_size",
            "must be at least 1".into(),
        )?;
        check(
            s.sample_every > 0,
            "schedule.sample_every",
            "must be at least 1".into(),
        )?;
        Ok(())
    }
}
