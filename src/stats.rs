//! How sure a figure is: standard errors, confidence intervals over seeds and Welch's test.
//!
//! Pure functions of numbers; the Student t distribution comes from `statrs`.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The standard error of a ratio of sums Σ losses / Σ lengths, with the items as the sampled
/// units: `items` holds each item's (summed loss, number of characters). The characters of one
/// item are not independent draws, so the items are the units (the delta method for a ratio
/// estimator). `None` for fewer than two items.
pub fn ratio_standard_error(items: &[(f64, f64)]) -> Option<f64> {
    let m = items.len();
    if m < 2 {
        return None;
    }
    let (losses, lengths) = items
        .iter()
        .fold((0.0, 0.0), |(s, n), (loss, len)| (s + loss, n + len));
    let ratio = losses / lengths;
    let mean_length = lengths / m as f64;
    let residuals: f64 = items
        .iter()
        .map(|(loss, len)| (loss - ratio * len).powi(2))
        .sum();
    Some((residuals / ((m * (m - 1)) as f64 * mean_length * mean_length)).sqrt())
}

/// Mean, sample standard deviation and count of one figure over a configuration's seeds, with
/// the half-width of the 95% confidence interval of the mean (Student t, n − 1 degrees of
/// freedom; `None` for a single value).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
    pub ci95: Option<f64>,
}

impl Stat {
    pub fn of(values: &[f64]) -> Option<Stat> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = match n {
            1 => 0.0,
            _ => values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64,
        };
        let std = var.sqrt();
        let ci95 = (n > 1).then(|| t_quantile(0.975, (n - 1) as f64) * std / (n as f64).sqrt());
        Some(Stat { mean, std, n, ci95 })
    }
}

/// The `p` quantile of Student's t with `df` degrees of freedom.
fn t_quantile(p: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df)
        .expect("degrees of freedom > 0")
        .inverse_cdf(p)
}

/// Welch's two-sided t-test of equal means for two sets of seeds, from their statistics:
/// the p-value, or `None` when either has fewer than two values.
pub fn welch_p(a: &Stat, b: &Stat) -> Option<f64> {
    if a.n < 2 || b.n < 2 {
        return None;
    }
    let (va, vb) = (a.std.powi(2) / a.n as f64, b.std.powi(2) / b.n as f64);
    let diff = (a.mean - b.mean).abs();
    if va + vb == 0.0 {
        // No spread at all: the means are equal or they are not.
        return Some(if diff == 0.0 { 1.0 } else { 0.0 });
    }
    let t = diff / (va + vb).sqrt();
    let df = (va + vb).powi(2) / (va.powi(2) / (a.n - 1) as f64 + vb.powi(2) / (b.n - 1) as f64);
    let dist = StudentsT::new(0.0, 1.0, df).expect("degrees of freedom > 0");
    Some(2.0 * dist.sf(t))
}
