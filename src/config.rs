//! The shape of a recurrent stack, as `torch.nn.RNN/LSTM/GRU`'s constructor arguments.

use crate::conventions::{Mode, ParamKind, param_name};
use crate::error::{Result, RnnError};

/// What `torch.nn.LSTM(input_size, hidden_size, num_layers, bias, batch_first, dropout,
/// bidirectional)` takes.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnConfig {
    pub mode: Mode,
    pub input_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub bidirectional: bool,
    pub bias: bool,
    /// Input and output are (B, T, features) at the API instead of (T, B, features).
    pub batch_first: bool,
    /// Probability of zeroing each output of every layer but the last, in training forwards
    /// only (`forward_train*`), the kept ones scaled by 1/(1-p): PyTorch's `dropout` in
    /// `train()` mode. Inference forwards never drop.
    pub dropout: f32,
}

impl RnnConfig {
    /// One layer, one direction, with bias, sequence-first: PyTorch's defaults.
    pub fn new(mode: Mode, input_size: usize, hidden_size: usize) -> Self {
        RnnConfig {
            mode,
            input_size,
            hidden_size,
            num_layers: 1,
            bidirectional: false,
            bias: true,
            batch_first: false,
            dropout: 0.0,
        }
    }

    pub fn layers(mut self, num_layers: usize) -> Self {
        self.num_layers = num_layers;
        self
    }

    pub fn bidirectional(mut self, bidirectional: bool) -> Self {
        self.bidirectional = bidirectional;
        self
    }

    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    pub fn batch_first(mut self, batch_first: bool) -> Self {
        self.batch_first = batch_first;
        self
    }

    pub fn dropout(mut self, p: f32) -> Self {
        self.dropout = p;
        self
    }

    /// Whether training forwards draw dropout masks (p > 0 and a layer above the first).
    pub fn drops_out(&self) -> bool {
        self.dropout > 0.0 && self.num_layers > 1
    }

    /// What PyTorch warns of at construction but accepts: dropout on a one-layer stack, which
    /// has no layer above the first to drop out before (the value then does nothing).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.dropout > 0.0 && self.num_layers == 1 {
            out.push(format!(
                "dropout adds dropout after all but the last recurrent layer, so dropout={} does nothing with num_layers=1",
                self.dropout
            ));
        }
        out
    }

    /// Rejects zero sizes and a dropout outside [0, 1), which PyTorch also refuses.
    pub fn validate(&self) -> Result<()> {
        for (what, value) in [
            ("input_size", self.input_size),
            ("hidden_size", self.hidden_size),
            ("num_layers", self.num_layers),
        ] {
            if value == 0 {
                return Err(RnnError::ZeroSize {
                    what: what.to_string(),
                });
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(RnnError::Config(format!(
                "dropout {} is outside [0, 1)",
                self.dropout
            )));
        }
        // Before anything is sized from the config: a count that overflows or parameters larger
        // than the memory are refused here, not met as an abort in the allocator.
        let count = self
            .checked_param_count()
            .ok_or_else(|| RnnError::TooLarge {
                what: format!("{self}"),
                needed: "2^64 parameters or more".into(),
                limit: "a usize can count".into(),
            })?;
        crate::limits::check_host_bytes(&format!("the parameters of {self}"), count, 4)
    }

    /// The number of scalar parameters, `None` when it overflows a `usize`; computed from the
    /// sizes alone (no list of tensors), so any config can ask it.
    pub fn checked_param_count(&self) -> Option<usize> {
        let (d, h) = (self.directions(), self.hidden_size);
        let gh = self.mode.gate_count().checked_mul(h)?;
        let biases = if self.bias { 2 } else { 0 };
        // One cell's parameters: G*H x (input + H) weights and 2 G*H biases.
        let cell = |input: usize| gh.checked_mul(input.checked_add(h)?.checked_add(biases)?);
        let first = cell(self.input_size)?.checked_mul(d)?;
        let above = cell(d.checked_mul(h)?)?
            .checked_mul(d)?
            .checked_mul(self.num_layers - 1)?;
        first.checked_add(above)
    }

    /// The bytes of host memory a training forward over (T, B) keeps (gate pre-activations,
    /// states and outputs of every layer), checked before the forward allocates them.
    pub fn check_activation_size(&self, seq: usize, batch: usize) -> Result<()> {
        let (d, h) = (self.directions(), self.hidden_size);
        // Per step, batch row, layer and direction: G*H gates, h and c, and the output.
        let per_cell = self.mode.gate_count() * h + 3 * h;
        let dims = [seq, batch, self.num_layers, d, per_cell];
        // Every forward (a stream step too) asks: the message is built only for a refusal.
        let values = dims.iter().try_fold(1usize, |acc, &n| acc.checked_mul(n));
        if values.is_some_and(|values| crate::limits::fits_in_memory(values, 4)) {
            return Ok(());
        }
        let what = format!("a forward over T={seq}, B={batch} of {self}");
        let values = crate::limits::checked_product(&what, &dims)?;
        crate::limits::check_host_bytes(&what, values, 4)
    }

    /// D: 2 if bidirectional, else 1.
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// G * H: the rows of every weight matrix.
    pub fn gate_rows(&self) -> usize {
        self.mode.gate_count() * self.hidden_size
    }

    /// Features entering layer `layer`: I for the first, D * H above it.
    pub fn layer_input_size(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.directions() * self.hidden_size
        }
    }

    /// Width of the stack's output: D * H.
    pub fn output_size(&self) -> usize {
        self.directions() * self.hidden_size
    }

    /// Shape of one parameter, as PyTorch stores it.
    pub fn param_shape(&self, kind: ParamKind, layer: usize) -> Vec<usize> {
        match kind {
            ParamKind::WeightIh => vec![self.gate_rows(), self.layer_input_size(layer)],
            ParamKind::WeightHh => vec![self.gate_rows(), self.hidden_size],
            ParamKind::BiasIh | ParamKind::BiasHh => vec![self.gate_rows()],
        }
    }

    /// Every parameter as (name, layer, reverse, kind, shape), in `named_parameters()` order.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        self.param_specs_iter().collect()
    }

    /// `param_specs` one at a time: a reader that stops at the first tensor a file lacks does
    /// work bounded by the file, whatever `num_layers` the file claims.
    pub fn param_specs_iter(&self) -> impl Iterator<Item = ParamSpec> + '_ {
        (0..self.num_layers).flat_map(move |layer| {
            (0..self.directions()).flat_map(move |direction| {
                ParamKind::ALL
                    .into_iter()
                    .filter(|kind| self.bias || !kind.is_bias())
                    .map(move |kind| ParamSpec {
                        name: param_name(kind, layer, direction == 1),
                        layer,
                        direction,
                        kind,
                        shape: self.param_shape(kind, layer),
                    })
            })
        })
    }

    /// Total number of scalar parameters (of a config that `validate` accepted).
    pub fn param_count(&self) -> usize {
        self.checked_param_count().unwrap_or(usize::MAX)
    }
}

/// One named parameter of a stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: String,
    pub layer: usize,
    /// 0 forward, 1 reverse.
    pub direction: usize,
    pub kind: ParamKind,
    pub shape: Vec<usize>,
}

impl std::fmt::Display for RnnConfig {
    /// `LSTM I=65 H=256 L=2`, and `bidirectional` when it is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} I={} H={} L={}",
            self.mode, self.input_size, self.hidden_size, self.num_layers
        )?;
        if self.bidirectional {
            f.write_str(" bidirectional")?;
        }
        Ok(())
    }
}
