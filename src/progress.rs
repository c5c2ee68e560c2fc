//! Progress for people: a bar on a terminal, plain log lines everywhere else (CI, Slurm, pipes).

use std::io::IsTerminal;
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    /// The step it started from (a resumed run's checkpoint): the time left is measured on the
    /// steps taken since.
    from: usize,
    /// Plain mode prints a line every this many steps.
    every: usize,
    started: Instant,
}

impl Progress {
    pub fn new(total: usize, from: usize) -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64).with_position(from as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} step {pos}/{len} | {msg} | eta {eta}")
                    .expect("a valid template"),
            );
            bar
        });
        Progress {
            bar,
            total,
            from,
            every: (total / 20).max(1),
            started: Instant::now(),
        }
    }

    /// Step `step` done, with its loss where it was read (on a GPU only every few steps).
    pub fn step(&self, step: usize, loss: Option<f64>, tokens_per_s: f64) {
        let status = match loss {
            Some(loss) => format!("loss {loss:.4} | {tokens_per_s:.0} tok/s"),
            None => format!("{tokens_per_s:.0} tok/s"),
        };
        match &self.bar {
            Some(bar) => {
                bar.set_position(step as u64);
                if loss.is_some() {
                    bar.set_message(status);
                }
            }
            None if step.is_multiple_of(self.every) || step == self.total => {
                let elapsed = self.started.elapsed().as_secs_f64();
                let eta = time_left(elapsed, self.from, step, self.total);
                print_line(&format!(
                    "step {step}/{} | {status} | eta {}",
                    self.total,
                    format_duration(eta)
                ));
            }
            None => {}
        }
    }

    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => print_line(line),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `println!` for what goes on while a command works (a run, a sweep): a closed stdout loses the
/// line and nothing else.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::progress::print_line(&format!($($arg)*))
    };
}

/// Seconds to `total` at the pace of the steps taken since `from` in `elapsed` seconds.
fn time_left(elapsed: f64, from: usize, step: usize, total: usize) -> f64 {
    let taken = step.saturating_sub(from).max(1);
    elapsed / taken as f64 * total.saturating_sub(step) as f64
}

/// Writes a line to stdout. A closed stdout (`makemore run … | head`) loses the line and nothing
/// else: the run goes on and its files say what happened.
pub fn print_line(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

pub fn format_duration(seconds: f64) -> String {
    let d = Duration::from_secs_f64(seconds.max(0.0));
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run resumed at step 900 that took 10 s for 100 steps has 1,000 steps, 100 s, to go
    /// (not the 10 s that dividing by all 1,000 steps would say).
    #[test]
    fn the_time_left_counts_only_the_steps_taken_here() {
        assert_eq!(time_left(10.0, 900, 1000, 2000), 100.0);
        assert_eq!(time_left(10.0, 0, 100, 200), 10.0);
        assert_eq!(time_left(1.0, 5, 5, 10), 5.0);
    }
}
