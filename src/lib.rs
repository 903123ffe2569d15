//! gammabench: a reproducible benchmark and data-challenge harness for finding and
//! classifying gamma-ray point sources (Panes et al. 2021, A&A 656, A62, and follow-ups).
//!
//! Data flows one way through the stages: [`catalog`] (mock AGN/PSR populations from 4FGL)
//! → [`sky`] (Asimov HEALPix maps over emission models B1-B3) → [`patches`] (64x64x5
//! cut-outs and truth) → models/train → [`score`] → report, with the [`challenge`] kit beside
//! it and the [`pipeline`] runner over all of them, on shared foundations: [`config`],
//! [`store`], [`rng`], [`formats`], [`coords`], [`projection`], [`npy`], [`plot`], [`stats`].

pub mod calibration;
pub mod catalog;
pub mod challenge;
pub mod classify;
pub mod compute;
pub mod config;
pub mod coords;
pub mod detect;
pub mod error;
pub mod folds;
pub mod formats;
pub mod models;
pub mod npy;
pub mod patches;
pub mod pipeline;
pub mod plot;
pub mod progress;
pub mod projection;
pub mod report;
pub mod rng;
pub mod score;
pub mod sky;
pub mod stage;
pub mod stats;
pub mod store;
pub mod tables;
pub mod train;

pub use error::{Error, Result};
