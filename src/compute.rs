//! Which burn backend runs the networks: `train.device` in a config, `--device` on the
//! `train`, `detect` and `run` commands.
//!
//! burn 0.22 dispatches on the device at run time (a [`Device`] carries its backend), so one
//! build runs every backend it was compiled with and the networks' code has no backend type
//! parameter. The default build compiles only **flex**, burn's pure-Rust CPU backend, whose
//! outputs are byte-identical at any thread count. Two optional cargo features add the fast
//! paths:
//!
//! | `--device` | cargo feature | backend |
//! |---|---|---|
//! | `flex` (default) | (always) | burn-flex, pure Rust |
//! | `tch-cpu` | `tch` | burn-tch on libtorch 2.9.0's CPU kernels |
//! | `tch-cuda[:N]` | `tch` | burn-tch on libtorch's CUDA device N |
//! | `cuda[:N]` | `cuda` | burn-cuda (CubeCL), CUDA device N |
//!
//! `tch` links the libtorch of a PyPI `torch==2.9.0` wheel (`LIBTORCH_USE_PYTORCH=1` with
//! that venv's `python3` on `PATH`; `scripts/setup-tch.sh` makes the venv outside the
//! repository). `cuda` builds without the CUDA toolkit (CubeCL loads the driver and NVRTC when
//! the first kernel runs). A device the build lacks is a usage error naming the feature.
//!
//! Results on another backend are not byte-identical to flex (other kernels sum in another
//! order; libtorch draws its own initial weights from the seed): `tests/backends.rs` bounds
//! the difference of a forward pass through the same weights.

use crate::error::{Error, Result};
use burn::prelude::Device;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A backend and, for a GPU, its index: `flex`, `tch-cpu`, `tch-cuda:0`, `cuda:1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Backend {
    /// burn-flex: pure-Rust CPU kernels, deterministic at any thread count.
    #[default]
    Flex,
    /// burn-tch on libtorch's CPU kernels (feature `tch`).
    TchCpu,
    /// burn-tch on libtorch's CUDA device of this index (feature `tch`).
    TchCuda(usize),
    /// burn-cuda (CubeCL) on the CUDA device of this index (feature `cuda`).
    Cuda(usize),
}

impl Backend {
    /// Every spelling `--device` takes, for help texts and errors.
    pub const CHOICES: &'static str = "flex, tch-cpu, tch-cuda[:N], cuda[:N]";

    /// True for the default (flex), which configs leave out so their stage keys stay put.
    pub fn is_default(&self) -> bool {
        *self == Self::Flex
    }

    /// The cargo feature this build needs for the backend (`None` for flex).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            Self::Flex => None,
            Self::TchCpu | Self::TchCuda(_) => Some("tch"),
            Self::Cuda(_) => Some("cuda"),
        }
    }

    /// True when this build was compiled with the backend's feature.
    pub fn compiled(self) -> bool {
        match self {
            Self::Flex => true,
            Self::TchCpu | Self::TchCuda(_) => cfg!(feature = "tch"),
            Self::Cuda(_) => cfg!(feature = "cuda"),
        }
    }

    /// The backends this build can run (GPU ones at index 0), in the order of the table above.
    pub fn compiled_backends() -> Vec<Backend> {
        [Self::Flex, Self::TchCpu, Self::TchCuda(0), Self::Cuda(0)]
            .into_iter()
            .filter(|b| b.compiled())
            .collect()
    }

    /// The inference device (no autodiff). Errors when the build lacks the backend.
    pub fn device(self) -> Result<Device> {
        self.check().map_err(Error::Usage)?;
        Ok(self.device_unchecked())
    }

    /// `Err` with the feature to build with when this build lacks the backend, for a config's
    /// validation to name its key.
    pub fn check(self) -> std::result::Result<(), String> {
        if self.compiled() {
            return Ok(());
        }
        Err(format!(
            "device `{self}` needs gammabench built with `--features {}` (this build has: {})",
            self.feature().unwrap_or("?"),
            Self::compiled_backends()
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// The training device: [`Self::device`] with reverse-mode autodiff.
    pub fn autodiff(self) -> Result<Device> {
        Ok(self.device()?.autodiff())
    }

    #[allow(deprecated, unreachable_code, unused_variables)] // burn-tch is deprecated upstream
    fn device_unchecked(self) -> Device {
        match self {
            Self::Flex => Device::flex(),
            #[cfg(feature = "tch")]
            Self::TchCpu => Device::libtorch(),
            #[cfg(feature = "tch")]
            Self::TchCuda(i) => Device::libtorch_cuda(i),
            #[cfg(feature = "cuda")]
            Self::Cuda(i) => Device::cuda(i),
            #[allow(unreachable_patterns)]
            _ => unreachable!("compiled() was checked"),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flex => f.write_str("flex"),
            Self::TchCpu => f.write_str("tch-cpu"),
            Self::TchCuda(i) => write!(f, "tch-cuda:{i}"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (name, index) = match s.split_once(':') {
            Some((n, i)) => {
                let i: usize = i.parse().map_err(|_| {
                    format!("device `{s}`: the GPU index `{i}` is not a non-negative integer")
                })?;
                (n, Some(i))
            }
            None => (s, None),
        };
        match (name, index) {
            ("flex", None) => Ok(Self::Flex),
            ("tch-cpu", None) => Ok(Self::TchCpu),
            ("tch-cuda", i) => Ok(Self::TchCuda(i.unwrap_or(0))),
            ("cuda", i) => Ok(Self::Cuda(i.unwrap_or(0))),
            ("flex" | "tch-cpu", Some(_)) => {
                Err(format!("device `{s}`: a CPU backend takes no index"))
            }
            _ => Err(format!("unknown device `{s}` (one of: {})", Self::CHOICES)),
        }
    }
}

impl TryFrom<String> for Backend {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl From<Backend> for String {
    fn from(b: Backend) -> String {
        b.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spellings_parse_and_print_back() {
        for (s, b) in [
            ("flex", Backend::Flex),
            ("tch-cpu", Backend::TchCpu),
            ("tch-cuda", Backend::TchCuda(0)),
            ("tch-cuda:2", Backend::TchCuda(2)),
            ("cuda", Backend::Cuda(0)),
            ("cuda:1", Backend::Cuda(1)),
        ] {
            assert_eq!(s.parse::<Backend>().unwrap(), b, "{s}");
        }
        assert_eq!(Backend::TchCuda(0).to_string(), "tch-cuda:0");
        for bad in ["gpu", "flex:0", "cuda:x", "tch", ""] {
            let e = bad.parse::<Backend>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(i in 0usize..64, k in 0usize..4) {
            let b = [Backend::Flex, Backend::TchCpu, Backend::TchCuda(i), Backend::Cuda(i)][k];
            prop_assert_eq!(b.to_string().parse::<Backend>().unwrap(), b);
        }
    }

    #[test]
    fn flex_is_always_there_and_a_missing_feature_is_named() {
        assert!(Backend::compiled_backends().contains(&Backend::Flex));
        assert!(Backend::Flex.device().is_ok());
        if !cfg!(feature = "cuda") {
            let e = Backend::Cuda(0).device().unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
        if !cfg!(feature = "tch") {
            let e = Backend::TchCpu.device().unwrap_err().to_string();
            assert!(e.contains("--features tch"), "{e}");
        }
    }
}
