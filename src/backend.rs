//! Where a model computes: the one switch between the CPU path and the GPU engine.

use std::fmt;
use std::str::FromStr;

use crate::error::RnnError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Gpu,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
        })
    }
}

impl FromStr for Backend {
    type Err = RnnError;

    fn from_str(s: &str) -> Result<Self, RnnError> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Backend::Cpu),
            "gpu" => Ok(Backend::Gpu),
            _ => Err(RnnError::Config(format!(
                "unknown backend '{s}' (expected cpu or gpu)"
            ))),
        }
    }
}
