//! makemore: character-level language models trained from declarative experiment files.
//!
//! Data flows one way: `config` (the experiment) → `data` (splits and batches) → `models` →
//! `train` (the loop, with `optim` and `sample`) → `rundir` and `checkpoint` (what a run leaves).
//! `run` ties them together for the `makemore run` command; `sweep` runs a grid of them.

pub mod backend;
pub mod bench;
pub mod check;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod files;
pub mod generation;
pub mod interchange;
pub mod models;
pub mod optim;
pub mod progress;
pub mod report;
pub mod rng;
pub mod run;
pub mod rundir;
pub mod sample;
pub mod score;
pub mod signals;
pub mod stats;
pub mod sweep;
pub mod tensorboard;
pub mod train;
pub mod trained;
