//! Handing a grid to a scheduler: an sbatch script for a Slurm job array, or one command per
//! trial for GNU parallel or xargs. Either way each task runs `makemore sweep GRID --index I`.

use std::fs;
use std::path::Path;

use super::grid::Grid;
use super::{Event, SweepRequest};
use crate::error::{Error, Result};
use crate::files::write_atomic;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::VariantNames, strum::IntoStaticStr,
)]
#[strum(serialize_all = "lowercase")]
pub enum Emit {
    Slurm,
    List,
}

/// Resources for the Slurm script; unset ones are left to the cluster's defaults.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    /// Slurm: time limit per trial, e.g. 1:00:00.
    pub time: Option<String>,
    /// Slurm: CPUs per trial.
    pub cpus_per_task: Option<usize>,
    /// Slurm: memory per trial, e.g. 4G.
    pub mem: Option<String>,
    /// Slurm: partition.
    pub partition: Option<String>,
    /// Slurm: at most K trials at once (--array=0-N%K).
    pub max_parallel: Option<usize>,
}

/// A value for an `#SBATCH` line: one word, so that it cannot end the line and add others to
/// the script.
pub fn sbatch_value(text: &str) -> std::result::Result<String, String> {
    match !text.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        true => Ok(text.to_string()),
        false => Err(format!("expected one word without spaces, got {text:?}")),
    }
}

pub fn emit(
    emit: Emit,
    grid: &Grid,
    dir: &Path,
    request: &SweepRequest,
    say: &mut dyn FnMut(Event),
) -> Result<()> {
    let exe = std::env::current_exe()?;
    let absolute = |path: &Path| {
        std::path::absolute(path).map_err(|e| Error::input(format!("{}: {e}", path.display())))
    };
    let mut command = vec![
        exe.display().to_string(),
        "sweep".into(),
        grid.file.display().to_string(),
        "--runs".into(),
        absolute(&request.runs)?.display().to_string(),
    ];
    for set in &request.sets {
        command.extend(["--set".into(), set.clone()]);
    }
    let command = shlex::try_join(command.iter().map(String::as_str))
        .map_err(|e| Error::input(format!("cannot write the command for a shell: {e}")))?;
    match emit {
        Emit::List => {
            for trial in &grid.trials {
                say(Event::Command(format!("{command} --index {}", trial.index)));
            }
        }
        Emit::Slurm => {
            let dir = absolute(dir)?;
            let out = dir.join("slurm");
            fs::create_dir_all(&out)?;
            let script = slurm_script(grid, &out, &command, &request.slurm);
            let path = dir.join("sweep.sbatch");
            write_atomic(&path, script.as_bytes())?;
            say(Event::Script(path));
        }
    }
    Ok(())
}

fn slurm_script(grid: &Grid, out: &Path, command: &str, options: &SlurmOptions) -> String {
    let last = grid.trials.len().saturating_sub(1);
    let limit = options
        .max_parallel
        .map_or(String::new(), |k| format!("%{k}"));
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!(
            "# Written by `makemore sweep --emit slurm`: one array task per trial of {}.",
            grid.file.display()
        ),
        format!("#SBATCH --job-name={}", grid.name),
        format!("#SBATCH --array=0-{last}{limit}"),
        format!("#SBATCH --output={}/%A_%a.out", out.display()),
    ];
    let optional = [
        ("time", options.time.clone()),
        (
            "cpus-per-task",
            options.cpus_per_task.map(|c| c.to_string()),
        ),
        ("mem", options.mem.clone()),
        ("partition", options.partition.clone()),
    ];
    for (flag, value) in optional {
        if let Some(value) = value {
            lines.push(format!("#SBATCH --{flag}={value}"));
        }
    }
    lines.extend([
        "# SIGTERM two minutes before the time limit (and on pre-emption): the trial writes a"
            .to_string(),
        "# checkpoint and stops; the requeued task, or the same script submitted again, resumes it."
            .to_string(),
        "#SBATCH --signal=B:TERM@120".to_string(),
        "#SBATCH --requeue".to_string(),
        "#SBATCH --open-mode=append".to_string(),
        String::new(),
        "# One thread per CPU Slurm gives the task; the trial comes from SLURM_ARRAY_TASK_ID."
            .to_string(),
        "export MAKEMORE_BACKEND__THREADS=${SLURM_CPUS_PER_TASK:-1}".to_string(),
        format!("exec {command}"),
    ]);
    lines.join("\n") + "\n"
}
