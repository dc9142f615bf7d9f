//! The one error type of the library: every variant names the tensor or file it is about.

use std::path::PathBuf;

/// Everything that can go wrong in `rnn_wgpu`, with the numbers a user needs to fix it.
#[derive(Debug, thiserror::Error)]
pub enum RnnError {
    /// A tensor has the wrong shape; `expected` may name symbolic dims, e.g. `(T, B, 4)`.
    #[error("{tensor}: expected shape {expected}, got {got:?}")]
    Shape {
        tensor: String,
        expected: String,
        got: Vec<usize>,
    },
    /// A size that must be positive is zero.
    #[error("{what} must be at least 1, got 0")]
    ZeroSize { what: String },
    /// NaN or infinity where it would poison the whole result: `index` in the tensor's own
    /// layout as the caller gave it, `position` the same index with its axes named.
    #[error("{tensor} has a non-finite value ({value}) at {index:?} ({position})")]
    NonFinite {
        tensor: String,
        index: Vec<usize>,
        position: String,
        value: f64,
    },
    /// Training produced a loss that is not finite: the run stops rather than go on (or report)
    /// with NaN.
    #[error(
        "training diverged at step {step}: the {what} is {value} (parameters or a learning rate too large for f32)"
    )]
    Diverged {
        step: usize,
        what: &'static str,
        value: f32,
    },
    /// Training ended with a validation loss far above an untrained model's (more than twice
    /// ln V): every value stayed finite, but the run diverged, as a rule from a learning rate
    /// too large. `kept` says where the best model of the earlier runs is, if anywhere.
    #[error(
        "training diverged by step {step}: the validation loss {loss} is far above an untrained model's {untrained:.3} (a smaller learning rate may help); {kept}"
    )]
    DivergedFinite {
        step: usize,
        loss: f32,
        untrained: f32,
        kept: String,
    },
    /// Training stopped on request (`TrainOptions::stop`, Ctrl-C in `train`) after `step`; the
    /// checkpoint, where the run writes one, holds that step.
    #[error("training stopped on request after step {step}")]
    Interrupted { step: usize },
    #[error("unknown mode '{0}' (expected RNN_TANH, RNN_RELU, LSTM or GRU)")]
    UnknownMode(String),
    /// A configuration that contradicts itself or the tensors given with it.
    #[error("lengths[{index}] = {value} is outside 1..={seq_len} (the input's T)")]
    Length {
        index: usize,
        value: usize,
        seq_len: usize,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("missing tensor '{name}' (expected {expected})")]
    MissingTensor { name: String, expected: String },
    #[error("unexpected tensor '{name}' (expected: {known})")]
    UnexpectedTensor { name: String, known: String },
    /// A file that cannot be read, or whose content is not what its format says.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{0} is not supported yet")]
    Unsupported(String),
    /// No adapter, a failed device request, or a validation error caught in an error scope.
    #[error("GPU: {0}")]
    Gpu(String),
    /// A size asked for (by a config, an option or a file) that this machine cannot hold:
    /// refused before anything is allocated.
    #[error("{what} would take {needed}, more than {limit}")]
    TooLarge {
        what: String,
        needed: String,
        limit: String,
    },
    /// A buffer, binding or grid the model needs is larger than the device allows.
    #[error("GPU limit {limit}: {what} needs {needed}, the device allows {allowed}")]
    DeviceLimit {
        limit: &'static str,
        what: String,
        needed: u64,
        allowed: u64,
    },
}

pub type Result<T, E = RnnError> = std::result::Result<T, E>;

/// Renders a shape the way PyTorch prints it: `(5, 3, 4)`.
pub(crate) fn shape_string(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("({})", inner.join(", "))
}
