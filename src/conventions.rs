//! PyTorch's recurrent-layer conventions, pinned in one place for the CPU path, the GPU path and
//! the file formats: modes, gate row order, the two bias vectors, parameter names and shapes,
//! and the default initialisation.
//!
//! Equations (PyTorch `torch.nn.RNN/LSTM/GRU`, gate rows stacked in this order):
//! - RNN:  h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu
//! - LSTM (rows i, f, g, o): i = σ(.), f = σ(.), g = tanh(.), o = σ(.),
//!   c' = f * c + i * g, h' = o * tanh(c')
//! - GRU (rows r, z, n): r = σ(W_ir x + b_ir + W_hr h + b_hr), z likewise,
//!   n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h

use std::fmt;
use std::str::FromStr;

use crate::error::RnnError;

/// The recurrent cell, under PyTorch's own `mode` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    RnnTanh,
    RnnRelu,
    Lstm,
    Gru,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::RnnTanh, Mode::RnnRelu, Mode::Lstm, Mode::Gru];

    /// G: how many H-row gate blocks the weight matrices stack.
    pub fn gate_count(self) -> usize {
        match self {
            Mode::RnnTanh | Mode::RnnRelu => 1,
            Mode::Lstm => 4,
            Mode::Gru => 3,
        }
    }

    /// Whether the cell carries a cell state `c` beside `h`.
    pub fn has_cell_state(self) -> bool {
        self == Mode::Lstm
    }

    /// PyTorch's name: `RNN_TANH`, `RNN_RELU`, `LSTM`, `GRU`.
    pub fn torch_name(self) -> &'static str {
        match self {
            Mode::RnnTanh => "RNN_TANH",
            Mode::RnnRelu => "RNN_RELU",
            Mode::Lstm => "LSTM",
            Mode::Gru => "GRU",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.torch_name())
    }
}

impl FromStr for Mode {
    type Err = RnnError;

    /// Accepts PyTorch's mode names and the CLI's short cell names (`rnn` is tanh).
    fn from_str(s: &str) -> Result<Self, RnnError> {
        match s.to_ascii_uppercase().as_str() {
            "RNN_TANH" | "RNN" => Ok(Mode::RnnTanh),
            "RNN_RELU" => Ok(Mode::RnnRelu),
            "LSTM" => Ok(Mode::Lstm),
            "GRU" => Ok(Mode::Gru),
            _ => Err(RnnError::UnknownMode(crate::limits::printable(s))),
        }
    }
}

/// LSTM gate blocks in row order.
pub mod lstm_gate {
    pub const INPUT: usize = 0;
    pub const FORGET: usize = 1;
    pub const CELL: usize = 2;
    pub const OUTPUT: usize = 3;
}

/// GRU gate blocks in row order.
pub mod gru_gate {
    pub const RESET: usize = 0;
    pub const UPDATE: usize = 1;
    pub const NEW: usize = 2;
}

/// The four parameter kinds of one layer and direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    WeightIh,
    WeightHh,
    BiasIh,
    BiasHh,
}

impl ParamKind {
    pub const ALL: [ParamKind; 4] = [
        ParamKind::WeightIh,
        ParamKind::WeightHh,
        ParamKind::BiasIh,
        ParamKind::BiasHh,
    ];

    fn stem(self) -> &'static str {
        match self {
            ParamKind::WeightIh => "weight_ih",
            ParamKind::WeightHh => "weight_hh",
            ParamKind::BiasIh => "bias_ih",
            ParamKind::BiasHh => "bias_hh",
        }
    }

    pub fn is_bias(self) -> bool {
        matches!(self, ParamKind::BiasIh | ParamKind::BiasHh)
    }
}

/// PyTorch's parameter name: `weight_ih_l{layer}` with `_reverse` for the backward direction.
pub fn param_name(kind: ParamKind, layer: usize, reverse: bool) -> String {
    let suffix = if reverse { "_reverse" } else { "" };
    format!("{}_l{}{}", kind.stem(), layer, suffix)
}

/// PyTorch's default initialisation bound: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)).
pub fn init_bound(hidden_size: usize) -> f64 {
    1.0 / (hidden_size as f64).sqrt()
}

/// Serialised as its name (`"LSTM"`), as in checkpoint metadata.
impl serde::Serialize for Mode {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}
