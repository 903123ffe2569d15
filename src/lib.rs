//! gammabench: a reproducible benchmark and data-challenge harness for finding and
//! classifying gamma-ray point sources (Panes et al. 2021, A&A 656, A62, and follow-ups).
//!
//! Data flows one way through the stages: [`catalog`] (mock AGN/PSR populations from 4FGL)
//! → sky → patches → models/train → score → report, over shared foundations: [`config`],
//! [`store`], [`rng`], [`formats`], [`coords`].

pub mod catalog;
pub mod config;
pub mod coords;
pub mod detect;
pub mod error;
pub mod formats;
pub mod models;
pub mod npy;
pub mod plot;
pub mod projection;
pub mod rng;
pub mod stats;
pub mod store;
pub mod train;

pub use error::{Error, Result};
