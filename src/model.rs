//! `Rnn`: the public model type. Checks every tensor it is given, handles `batch_first`, and
//! runs the stack on the CPU engine or the GPU engine through one seam (`crate::engine`): the
//! same calls and results on both.

use std::sync::{Arc, Mutex};

use ndarray::{Array3, ArrayView2, ArrayView3, CowArray, Ix3};

use crate::Real;
use crate::backend::Backend;
use crate::config::RnnConfig;
use crate::cpu::{CpuEngine, StackTape, Workspace};
use crate::dropout::{MaskStream, draw_masks};
use crate::engine::{Engine, StackGrads, StackInput, StackInputs, StackOutput, StackUpstream};
use crate::error::{Result, RnnError, shape_string};
use crate::gpu::{GpuContext, GpuModel, GpuTape};
use crate::params::RnnParams;

mod device;
mod device_copy;

use device_copy::DeviceCopy;
pub use device_copy::SyncState;

/// A recurrent stack with its parameters, as `torch.nn.RNN/LSTM/GRU`.
pub struct Rnn<T = f32> {
    config: RnnConfig,
    /// The parameters; on the GPU backend the device holds a copy, kept in step by `device`.
    params: RnnParams<T>,
    /// Large CPU buffers kept between calls.
    workspace: Workspace<T>,
    /// The GPU backend's copy; `None` on the CPU backend.
    device: Option<DeviceCopy>,
    /// Where training forwards draw their dropout masks from.
    dropout_masks: Mutex<MaskStream>,
    /// PyTorch's train() / eval(): dropout only in train mode (the default).
    training: bool,
}

impl<T: Real> Clone for Rnn<T> {
    /// A clone on the GPU backend shares the device and uploads its own parameters on first use:
    /// the host copy, so after optimizer steps on the device call `sync_params` first (a clone
    /// made before refuses to build its device copy or change backend).
    fn clone(&self) -> Self {
        Rnn {
            config: self.config.clone(),
            params: self.params.clone(),
            workspace: self.workspace.clone(),
            device: self.device.as_ref().map(DeviceCopy::fresh),
            dropout_masks: Mutex::new(MaskStream::new(0)),
            training: self.training,
        }
    }
}

impl<T: Real> std::fmt::Debug for Rnn<T> {
    /// What the model is, as PyTorch's `repr` of a module, not every parameter value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slices = self.params.slices();
        let values: usize = slices.iter().map(|s| s.len()).sum();
        let backend = match &self.device {
            Some(device) => format!("gpu ({})", device.context().info.name),
            None => "cpu".to_string(),
        };
        f.debug_struct("Rnn")
            .field("config", &self.config)
            .field(
                "parameters",
                &format!("{values} values in {} tensors", slices.len()),
            )
            .field("backend", &backend)
            .field("f16", &self.is_f16())
            .finish()
    }
}

impl<T: PartialEq> PartialEq for Rnn<T> {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config && self.params == other.params
    }
}

/// What `forward` returns, in the layout the config asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnOutput<T> {
    /// (T, B, D*H), or (B, T, D*H) with `batch_first`
    pub output: Array3<T>,
    /// (L*D, B, H)
    pub h_n: Array3<T>,
    /// (L*D, B, H), LSTM only
    pub c_n: Option<Array3<T>>,
}

/// Upstream gradients for `backward`; a `None` is a zero gradient, as for an unused output.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutputGrads<'a, T> {
    /// (T, B, D*H), or (B, T, D*H) with `batch_first`
    pub output: Option<ArrayView3<'a, T>>,
    /// (L*D, B, H)
    pub h_n: Option<ArrayView3<'a, T>>,
    /// (L*D, B, H), LSTM only
    pub c_n: Option<ArrayView3<'a, T>>,
}

/// Gradients of everything the forward pass read.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnGrads<T> {
    /// Same layout as the input; `None` unless asked for.
    pub input: Option<Array3<T>>,
    /// (L*D, B, H)
    pub h0: Array3<T>,
    /// (L*D, B, H), LSTM only
    pub c0: Option<Array3<T>>,
    /// Same names and shapes as the parameters.
    pub params: RnnParams<T>,
}

/// What `backward` needs from `forward_train`.
pub struct Tape<T> {
    inner: TapeInner<T>,
    /// The model's config when the tape was made: a tape is refused by a model of another.
    config: RnnConfig,
    seq_len: usize,
    batch: usize,
    /// The forward read token ids, which have no gradient.
    tokens: bool,
}

enum TapeInner<T> {
    Cpu(StackTape<T>),
    /// Activations stay on the device, in the plan this tape holds.
    Gpu(GpuTape),
}

/// What a forward pass reads as its input, in the caller's layout.
#[derive(Clone, Copy, Debug)]
pub enum RnnInput<'a, T> {
    /// (T, B, I), or (B, T, I) with `batch_first`
    Dense(ArrayView3<'a, T>),
    /// (T, B), or (B, T) with `batch_first`: ids in 0..I standing for one-hot rows
    Tokens(ArrayView2<'a, usize>),
}

impl<'a, T> From<ArrayView3<'a, T>> for RnnInput<'a, T> {
    fn from(x: ArrayView3<'a, T>) -> Self {
        RnnInput::Dense(x)
    }
}

impl<'a, T> From<ArrayView2<'a, usize>> for RnnInput<'a, T> {
    fn from(ids: ArrayView2<'a, usize>) -> Self {
        RnnInput::Tokens(ids)
    }
}

/// One batch for any forward: dense rows or token ids, with or without lengths (PyTorch's
/// packed sequences), from given or zero initial states. Every `forward*` method is this with
/// some fields left at their defaults.
#[derive(Clone, Copy, Debug)]
pub struct RnnBatch<'a, T> {
    pub input: RnnInput<'a, T>,
    /// (B), each in 1..=T: row b is `lengths[b]` steps long, what lies past its end padding
    pub lengths: Option<&'a [usize]>,
    /// (L*D, B, H); zeros when `None`
    pub h0: Option<ArrayView3<'a, T>>,
    /// (L*D, B, H), LSTM only; zeros when `None`
    pub c0: Option<ArrayView3<'a, T>>,
}

impl<'a, T> RnnBatch<'a, T> {
    /// input (T, B, I) or (B, T, I) with `batch_first`, from zero states.
    pub fn dense(input: ArrayView3<'a, T>) -> Self {
        RnnBatch::new(RnnInput::Dense(input))
    }

    /// tokens (T, B) or (B, T) with `batch_first`, each in 0..I, from zero states.
    pub fn tokens(tokens: ArrayView2<'a, usize>) -> Self {
        RnnBatch::new(RnnInput::Tokens(tokens))
    }

    pub fn new(input: RnnInput<'a, T>) -> Self {
        RnnBatch {
            input,
            lengths: None,
            h0: None,
            c0: None,
        }
    }

    /// lengths (B): a variable-length batch.
    pub fn lengths(self, lengths: &'a [usize]) -> Self {
        RnnBatch {
            lengths: Some(lengths),
            ..self
        }
    }

    /// Initial states h0 and (LSTM) c0, each (L*D, B, H); `None` is zeros.
    pub fn states(self, h0: Option<ArrayView3<'a, T>>, c0: Option<ArrayView3<'a, T>>) -> Self {
        RnnBatch { h0, c0, ..self }
    }
}

impl<T: Real> Rnn<T> {
    /// A model with PyTorch's default initialisation, reproducible from `seed`.
    pub fn new(config: RnnConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let params = RnnParams::init(&config, seed);
        Ok(Rnn::on_cpu(config, params))
    }

    /// A model with given parameters; every shape is checked against the config.
    pub fn from_params(config: RnnConfig, params: RnnParams<T>) -> Result<Self> {
        config.validate()?;
        crate::params::check_shapes(&config, &params)?;
        Ok(Rnn::on_cpu(config, params))
    }

    fn on_cpu(config: RnnConfig, params: RnnParams<T>) -> Self {
        Rnn {
            config,
            params,
            workspace: Workspace::new(),
            device: None,
            dropout_masks: Mutex::new(MaskStream::new(0)),
            training: true,
        }
    }

    /// Moves the model to `backend`; the GPU backend runs on the process's shared device
    /// (`GpuContext::shared`: the preferred adapter, opened once).
    pub fn with_backend(self, backend: Backend) -> Result<Self> {
        self.check_host_current()?;
        match backend {
            Backend::Cpu => Ok(Rnn {
                device: None,
                ..self
            }),
            Backend::Gpu => self.with_gpu(GpuContext::shared()?),
        }
    }

    /// Moves the model to the GPU of `context` (shared between models); parameters are uploaded
    /// now, so a model too large for the device fails here.
    pub fn with_gpu(self, context: Arc<GpuContext>) -> Result<Self> {
        self.check_host_current()?;
        let model = Rnn {
            device: Some(DeviceCopy::new(context, false)),
            ..self
        };
        model.gpu_model()?;
        Ok(model)
    }

    /// GPU inference in f16 where the adapter has SHADER_F16: W_ih, W_hh, the input, the gate
    /// pre-activations and the layer outputs stored f16, arithmetic and the recurrent states
    /// (h, c) f32. Where it has not, the model
    /// stays f32: `is_f16` says which. Training such a model is an error.
    pub fn with_f16(self) -> Result<Self> {
        let Some(device) = &self.device else {
            return Err(RnnError::Unsupported(
                "f16 on the CPU backend (move the model to the GPU first)".into(),
            ));
        };
        if !device.context().has_f16() {
            return Ok(self);
        }
        self.check_host_current()?;
        let model = Rnn {
            device: Some(device.with_f16(true)),
            ..self
        };
        model.gpu_model()?;
        Ok(model)
    }

    /// The same model with dropout `p` between its layers in training forwards
    /// (`RnnConfig::dropout`); a GPU model rebuilds its device plans on next use.
    pub fn with_dropout(self, p: f32) -> Result<Self> {
        self.check_host_current()?;
        let config = self.config.clone().dropout(p);
        config.validate()?;
        Ok(Rnn {
            config,
            device: self.device.as_ref().map(DeviceCopy::fresh),
            ..self
        })
    }

    /// An error when optimizer steps on the device left the host parameters behind (see
    /// `sync_params`): what would rebuild the device copy from them must not run then.
    fn check_host_current(&self) -> Result<()> {
        match &self.device {
            Some(device) => device.check_host_current(),
            None => Ok(()),
        }
    }

    /// Restarts the stream of dropout masks that training forwards draw (see
    /// `RnnConfig::dropout`); a training loop reseeds it per step so that a resumed run drops
    /// what an uninterrupted one would.
    pub fn seed_dropout(&self, seed: u64) {
        *self.dropout_masks.lock().unwrap_or_else(|p| p.into_inner()) = MaskStream::new(seed);
    }

    /// PyTorch's `train()` (true, the default) or `eval()` (false): in eval mode training
    /// forwards drop nothing, so their outputs equal inference forwards while still keeping a
    /// tape for `backward`.
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    pub fn is_training(&self) -> bool {
        self.training
    }

    /// The masks of one training forward: empty without dropout or in eval mode.
    fn draw_dropout(&self, seq: usize, batch: usize) -> Vec<Array3<T>> {
        if !self.training {
            return Vec::new();
        }
        let mut stream = self.dropout_masks.lock().unwrap_or_else(|p| p.into_inner());
        draw_masks(&self.config, seq, batch, stream.rng())
    }

    /// Whether the GPU holds this model's weights and activations in f16 (see `with_f16`).
    pub fn is_f16(&self) -> bool {
        self.device.as_ref().is_some_and(DeviceCopy::is_f16)
    }

    /// The device of a GPU model (shared by every model moved there with `with_backend`).
    pub fn gpu_context(&self) -> Option<&Arc<GpuContext>> {
        self.device.as_ref().map(DeviceCopy::context)
    }

    /// Which copy of the parameters is newer on the GPU backend; `None` on the CPU.
    pub fn sync_state(&self) -> Option<SyncState> {
        self.device.as_ref().map(DeviceCopy::sync_state)
    }

    pub fn backend(&self) -> Backend {
        if self.device.is_some() {
            Backend::Gpu
        } else {
            Backend::Cpu
        }
    }

    /// The device-side model on the GPU backend (uploaded, and refreshed after `params_mut`).
    pub fn gpu_model(&self) -> Result<Option<Arc<GpuModel>>> {
        self.device
            .as_ref()
            .map(|device| device.model(&self.config, &self.params))
            .transpose()
    }

    pub fn config(&self) -> &RnnConfig {
        &self.config
    }

    pub fn params(&self) -> &RnnParams<T> {
        &self.params
    }

    /// The parameters to change in place; the GPU copy is refreshed before its next use.
    pub fn params_mut(&mut self) -> &mut RnnParams<T> {
        if let Some(device) = &mut self.device {
            device.host_changed();
        }
        &mut self.params
    }

    /// Inference: output and final states from `h0` / `c0` (zeros when `None`).
    /// input (T, B, I) or (B, T, I) with `batch_first`; h0, c0 (L*D, B, H).
    pub fn forward(
        &self,
        input: ArrayView3<'_, T>,
        h0: Option<ArrayView3<'_, T>>,
        c0: Option<ArrayView3<'_, T>>,
    ) -> Result<RnnOutput<T>> {
        self.forward_batch(RnnBatch::dense(input).states(h0, c0))
    }

    /// `forward` of one-hot rows given as token ids: tokens (T, B) or (B, T) with `batch_first`,
    /// each in 0..I; the input I is the vocabulary. Equals `forward` of the one-hot tensor; the
    /// CPU path gathers columns of W_ih instead of multiplying by the zeros.
    pub fn forward_tokens(
        &self,
        tokens: ArrayView2<'_, usize>,
        h0: Option<ArrayView3<'_, T>>,
        c0: Option<ArrayView3<'_, T>>,
    ) -> Result<RnnOutput<T>> {
        self.forward_batch(RnnBatch::tokens(tokens).states(h0, c0))
    }

    /// `forward_tokens` that also returns the tape `backward` needs (which then gives no input
    /// gradient: token ids have none).
    pub fn forward_train_tokens(
        &self,
        tokens: ArrayView2<'_, usize>,
        h0: Option<ArrayView3<'_, T>>,
        c0: Option<ArrayView3<'_, T>>,
    ) -> Result<(RnnOutput<T>, Tape<T>)> {
        self.forward_train_batch(RnnBatch::tokens(tokens).states(h0, c0))
    }

    /// Inference over a variable-length batch, as PyTorch's packed sequences: row b is
    /// `lengths[b]` steps long (1..=T) and what lies past its end is padding. Outputs past a
    /// row's end are zero, h_n / c_n are each row's own last state, and a reverse direction
    /// reads each row backward from its own end. Shapes as `forward`; lengths (B).
    pub fn forward_packed(
        &self,
        input: ArrayView3<'_, T>,
        lengths: &[usize],
        h0: Option<ArrayView3<'_, T>>,
        c0: Option<ArrayView3<'_, T>>,
    ) -> Result<RnnOutput<T>> {
        self.forward_batch(RnnBatch::dense(input).lengths(lengths).states(h0, c0))
    }

    /// `forward_packed` that also returns the tape `backward` needs; the backward pass then
    /// passes gradients straight through the padded steps.
    pub fn forward_train_packed(
        &self,
        input: ArrayView3<'_, T>,
        lengths: &[usize],
        h0: Option<ArrayView3<'_, T>>,
        c0: Option<ArrayView3<'_, T>>,
    ) -> Result<(RnnOutput<T>, Tape<T>)> {
        self.forward_train_batch(RnnBatch::dense(input).lengths(lengths).states(h0, c0))
    }

    /// Forward pass that also returns the tape `backward` needs.
    pub fn forward_train(
        &self,
        input: ArrayView3<'_, T>,
        h0: Option<ArrayView3<'_, T>>,
        c0: Option<ArrayView3<'_, T>>,
    ) -> Result<(RnnOutput<T>, Tape<T>)> {
        self.forward_train_batch(RnnBatch::dense(input).states(h0, c0))
    }

    /// Forward and BPTT together: on the GPU one submission for both.
    pub fn forward_backward(
        &self,
        input: ArrayView3<'_, T>,
        h0: Option<ArrayView3<'_, T>>,
        c0: Option<ArrayView3<'_, T>>,
        grads: OutputGrads<'_, T>,
        need_input_grad: bool,
    ) -> Result<(RnnOutput<T>, RnnGrads<T>)> {
        let batch = RnnBatch::dense(input).states(h0, c0);
        self.forward_backward_batch(batch, grads, need_input_grad)
    }

    /// Inference over any batch: dense or token ids, with or without lengths.
    pub fn forward_batch(&self, batch: RnnBatch<'_, T>) -> Result<RnnOutput<T>> {
        let checked = self.check_batch(batch)?;
        let (output, _) = self.on_engine(checked, false)?;
        self.check_output(&output)?;
        Ok(self.api_output(output))
    }

    /// A training forward over any batch, with the tape `backward` needs (dropout drawn, as
    /// in PyTorch's train() mode).
    pub fn forward_train_batch(&self, batch: RnnBatch<'_, T>) -> Result<(RnnOutput<T>, Tape<T>)> {
        self.check_trainable()?;
        let mut inputs = self.check_batch(batch)?;
        let (seq_len, batch) = inputs.seq_batch();
        let tokens = inputs.input.is_tokens();
        inputs.dropout = self.draw_dropout(seq_len, batch);
        // Training forwards are not checked here: their loss is (a NaN loss stops a run with
        // `RnnError::Diverged`, naming the step).
        let (output, inner) = self.on_engine(inputs, true)?;
        let tape = Tape {
            inner: inner.expect("a training forward keeps its tape"),
            config: self.config.clone(),
            seq_len,
            batch,
            tokens,
        };
        Ok((self.api_output(output), tape))
    }

    /// Forward and BPTT over any batch together: on the GPU one submission for both. Equals
    /// `forward_train_batch` then `backward`; token ids have no input gradient.
    pub fn forward_backward_batch(
        &self,
        batch: RnnBatch<'_, T>,
        grads: OutputGrads<'_, T>,
        need_input_grad: bool,
    ) -> Result<(RnnOutput<T>, RnnGrads<T>)> {
        self.check_trainable()?;
        let mut inputs = self.check_batch(batch)?;
        check_input_grad(need_input_grad, inputs.input.is_tokens())?;
        let (seq_len, batch) = inputs.seq_batch();
        let upstream = self.check_upstream(seq_len, batch, grads)?;
        inputs.dropout = self.draw_dropout(seq_len, batch);
        let (output, grads) = match self.gpu_model()? {
            Some(gpu) => gpu.forward_backward(inputs, upstream, need_input_grad)?,
            None => self
                .cpu()
                .forward_backward(inputs, upstream, need_input_grad)?,
        };
        Ok((self.api_output(output), self.api_grads(grads)))
    }

    /// BPTT from upstream gradients; `need_input_grad` adds dLoss/d input.
    pub fn backward(
        &self,
        tape: Tape<T>,
        grads: OutputGrads<'_, T>,
        need_input_grad: bool,
    ) -> Result<RnnGrads<T>> {
        check_input_grad(need_input_grad, tape.tokens)?;
        if tape.config != self.config {
            return Err(RnnError::Config(format!(
                "the tape comes from another model ({}), not this one ({})",
                tape.config, self.config
            )));
        }
        crate::params::check_shapes(&self.config, &self.params)?;
        let upstream = self.check_upstream(tape.seq_len, tape.batch, grads)?;
        let grads = match tape.inner {
            TapeInner::Cpu(stack) => self.cpu().backward(stack, upstream, need_input_grad)?,
            TapeInner::Gpu(tape) => {
                let gpu = self
                    .gpu_model()?
                    .ok_or_else(|| RnnError::Config("a GPU tape given to a CPU model".into()))?;
                gpu.backward(tape, upstream, need_input_grad)?
            }
        };
        Ok(self.api_grads(grads))
    }

    /// The CPU engine over this model's parameters and workspace.
    fn cpu(&self) -> CpuEngine<'_, T> {
        CpuEngine {
            config: &self.config,
            params: &self.params,
            workspace: &self.workspace,
        }
    }

    /// A forward on whichever engine the model is on.
    fn on_engine(
        &self,
        inputs: StackInputs<'_, T>,
        keep_tape: bool,
    ) -> Result<(StackOutput<T>, Option<TapeInner<T>>)> {
        Ok(match self.gpu_model()? {
            Some(gpu) => {
                let (output, tape) = Engine::<T>::forward(&*gpu, inputs, keep_tape)?;
                (output, tape.map(TapeInner::Gpu))
            }
            None => {
                let (output, tape) = self.cpu().forward(inputs, keep_tape)?;
                (output, tape.map(TapeInner::Cpu))
            }
        })
    }

    /// f16 models are for inference only.
    fn check_trainable(&self) -> Result<()> {
        if self.is_f16() {
            return Err(RnnError::Unsupported(
                "training an f16 model (f16 is for inference)".into(),
            ));
        }
        Ok(())
    }

    fn api_output(&self, out: StackOutput<T>) -> RnnOutput<T> {
        RnnOutput {
            output: self.to_api_layout(out.output),
            h_n: out.h_n,
            c_n: out.c_n,
        }
    }

    fn api_grads(&self, g: StackGrads<T>) -> RnnGrads<T> {
        RnnGrads {
            input: g.input.map(|x| self.to_api_layout(x)),
            h0: g.h0,
            c0: g.c0,
            params: g.params,
        }
    }

    /// The one check of every forward: input (dense or tokens), lengths, h0 and c0; returns
    /// them seq-first with zeros for absent states.
    /// Dropout masks are the caller's to add (training forwards only).
    fn check_batch<'a>(&self, batch: RnnBatch<'a, T>) -> Result<StackInputs<'a, T>> {
        crate::params::check_shapes(&self.config, &self.params)?;
        let input = match batch.input {
            RnnInput::Dense(x) => StackInput::Dense(self.check_dense_input(x)?),
            RnnInput::Tokens(ids) => StackInput::Tokens(self.check_token_input(ids)?),
        };
        let (seq_len, rows) = input.seq_batch();
        let (h0, c0) = self.check_states(rows, batch.h0, batch.c0)?;
        if let Some(lengths) = batch.lengths {
            check_lengths(lengths, seq_len, rows)?;
        }
        Ok(StackInputs {
            input,
            h0,
            c0,
            lengths: batch.lengths,
            dropout: Vec::new(),
        })
    }

    /// input (T, B, I) or (B, T, I) -> (T, B, I), every value finite.
    fn check_dense_input<'a>(&self, input: ArrayView3<'a, T>) -> Result<CowArray<'a, T, Ix3>> {
        let cfg = &self.config;
        let input = self.to_seq_first(input);
        let (seq_len, batch, features) = input.dim();
        check_nonempty(seq_len, batch)?;
        cfg.check_activation_size(seq_len, batch)?;
        if features != cfg.input_size {
            let expected = if cfg.batch_first {
                "(B, T, {I})"
            } else {
                "(T, B, {I})"
            };
            return Err(RnnError::Shape {
                tensor: "input".into(),
                expected: expected.replace("{I}", &cfg.input_size.to_string()),
                got: self.api_dims(input.dim()),
            });
        }
        // Checked in the caller's layout, so that the index reported is theirs.
        let axes = if cfg.batch_first {
            ["batch row", "step", "feature"]
        } else {
            ["step", "batch row", "feature"]
        };
        check_finite("input", self.view_as_given(input.view()), axes)?;
        Ok(input)
    }

    /// tokens (T, B) or (B, T) -> (T, B), every id in 0..I.
    fn check_token_input<'a>(
        &self,
        tokens: ArrayView2<'a, usize>,
    ) -> Result<ArrayView2<'a, usize>> {
        let tokens = if self.config.batch_first {
            tokens.reversed_axes()
        } else {
            tokens
        };
        check_nonempty(tokens.nrows(), tokens.ncols())?;
        self.config
            .check_activation_size(tokens.nrows(), tokens.ncols())?;
        crate::tokens::check_tokens("tokens", tokens, self.config.input_size)?;
        Ok(tokens)
    }

    /// h0 and c0 as a forward checks them (B from h0), owned; an absent c0 is zeros.
    pub(crate) fn checked_states(
        &self,
        h0: ArrayView3<'_, T>,
        c0: Option<ArrayView3<'_, T>>,
    ) -> Result<(Array3<T>, Option<Array3<T>>)> {
        let (h, c) = self.check_states(h0.dim().1, Some(h0), c0)?;
        Ok((h.into_owned(), c.map(|c| c.into_owned())))
    }

    /// h0 and c0 (L*D, B, H), zeros where absent; c0 only for LSTM.
    #[allow(clippy::type_complexity)]
    fn check_states<'a>(
        &self,
        batch: usize,
        h0: Option<ArrayView3<'a, T>>,
        c0: Option<ArrayView3<'a, T>>,
    ) -> Result<(CowArray<'a, T, Ix3>, Option<CowArray<'a, T, Ix3>>)> {
        let cfg = &self.config;
        let state = |name: &str, given| self.check_state(name, given, batch);
        let h0 = state("h0", h0)?;
        let c0 = if cfg.mode.has_cell_state() {
            Some(state("c0", c0)?)
        } else if c0.is_some() {
            return Err(RnnError::Config(format!(
                "c0 is only for LSTM, this model is {}",
                cfg.mode
            )));
        } else {
            None
        };
        Ok((h0, c0))
    }

    /// Checks the upstream gradients; returns them seq-first with zeros for absent ones.
    fn check_upstream<'a>(
        &self,
        seq_len: usize,
        batch: usize,
        grads: OutputGrads<'a, T>,
    ) -> Result<StackUpstream<'a, T>> {
        let cfg = &self.config;
        let out_dims = (seq_len, batch, cfg.output_size());
        let grad_output = match grads.output {
            Some(g) => {
                let g = self.to_seq_first(g);
                if g.dim() != out_dims {
                    return Err(RnnError::Shape {
                        tensor: "grad_output".into(),
                        expected: shape_string(&self.api_dims(out_dims)),
                        got: self.api_dims(g.dim()),
                    });
                }
                g
            }
            None => CowArray::from(Array3::zeros(out_dims)),
        };
        let state = |name: &str, given| self.check_state(name, given, batch);
        let h_n = state("grad_h_n", grads.h_n)?;
        let c_n = match (cfg.mode.has_cell_state(), grads.c_n) {
            (true, g) => Some(state("grad_c_n", g)?),
            (false, None) => None,
            (false, Some(_)) => {
                return Err(RnnError::Config(format!(
                    "grad_c_n is only for LSTM, this model is {}",
                    cfg.mode
                )));
            }
        };
        Ok(StackUpstream {
            output: grad_output,
            h_n,
            c_n,
        })
    }

    fn state_zeros(&self, batch: usize) -> Array3<T> {
        let cfg = &self.config;
        Array3::zeros((cfg.num_layers * cfg.directions(), batch, cfg.hidden_size))
    }

    /// Checks a (L*D, B, H) state or state gradient; an absent one is zeros.
    fn check_state<'a>(
        &self,
        name: &str,
        state: Option<ArrayView3<'a, T>>,
        batch: usize,
    ) -> Result<CowArray<'a, T, Ix3>> {
        let Some(state) = state else {
            return Ok(CowArray::from(self.state_zeros(batch)));
        };
        let cfg = &self.config;
        let want = [cfg.num_layers * cfg.directions(), batch, cfg.hidden_size];
        if state.shape() != want {
            return Err(RnnError::Shape {
                tensor: name.to_string(),
                expected: shape_string(&want),
                got: state.shape().to_vec(),
            });
        }
        check_finite(name, state, ["layer and direction", "batch row", "unit"])?;
        Ok(CowArray::from(state))
    }

    /// (B, T, F) -> (T, B, F) when batch-first; a view, no copy.
    fn to_seq_first<'a>(&self, x: ArrayView3<'a, T>) -> CowArray<'a, T, Ix3> {
        if self.config.batch_first {
            CowArray::from(x.permuted_axes([1, 0, 2]))
        } else {
            CowArray::from(x)
        }
    }

    /// (T, B, F) -> the caller's layout, (B, T, F) when batch-first; a view, no copy.
    fn view_as_given<'a>(&self, x: ArrayView3<'a, T>) -> ArrayView3<'a, T> {
        if self.config.batch_first {
            x.permuted_axes([1, 0, 2])
        } else {
            x
        }
    }

    fn to_api_layout(&self, x: Array3<T>) -> Array3<T> {
        if self.config.batch_first {
            x.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()
        } else {
            x
        }
    }

    fn api_dims(&self, (t, b, f): (usize, usize, usize)) -> Vec<usize> {
        if self.config.batch_first {
            vec![b, t, f]
        } else {
            vec![t, b, f]
        }
    }
}

/// An input with no steps or no batch rows is refused, not returned empty.
fn check_nonempty(seq_len: usize, batch: usize) -> Result<()> {
    if seq_len == 0 || batch == 0 {
        return Err(RnnError::ZeroSize {
            what: if seq_len == 0 {
                "sequence length of input"
            } else {
                "batch size of input"
            }
            .to_string(),
        });
    }
    Ok(())
}

/// lengths (B): one per batch row, each in 1..=T.
fn check_lengths(lengths: &[usize], seq_len: usize, batch: usize) -> Result<()> {
    if lengths.len() != batch {
        return Err(RnnError::Shape {
            tensor: "lengths".into(),
            expected: format!("({batch}), one per batch row"),
            got: vec![lengths.len()],
        });
    }
    match lengths.iter().position(|&len| len == 0 || len > seq_len) {
        Some(index) => Err(RnnError::Length {
            index,
            value: lengths[index],
            seq_len,
        }),
        None => Ok(()),
    }
}

impl<T: Real> Rnn<T> {
    /// Weights or inputs that are finite but overflow f32 arithmetic (a file's +-3e38) make
    /// the output NaN or infinite: an inference forward returns an error naming the first such
    /// value, in the caller's layout, not a result of garbage.
    fn check_output(&self, out: &StackOutput<T>) -> Result<()> {
        let axes = if self.config.batch_first {
            ["batch row", "step", "feature"]
        } else {
            ["step", "batch row", "feature"]
        };
        let finite = |a: &Array3<T>| a.iter().all(|v| v.is_finite());
        if finite(&out.output) && finite(&out.h_n) && out.c_n.as_ref().is_none_or(finite) {
            return Ok(());
        }
        let states = ["layer and direction", "batch row", "unit"];
        let overflow = " (the weights or inputs overflow f32 arithmetic)";
        check_finite(
            &format!("output{overflow}"),
            self.view_as_given(out.output.view()),
            axes,
        )?;
        check_finite(&format!("h_n{overflow}"), out.h_n.view(), states)?;
        if let Some(c_n) = &out.c_n {
            check_finite(&format!("c_n{overflow}"), c_n.view(), states)?;
        }
        Ok(())
    }
}

/// NaN or infinity in an input poisons every output: refuse it with its position, `axes`
/// naming the three axes of `x` as the caller laid it out.
fn check_finite<T: Real>(name: &str, x: ArrayView3<'_, T>, axes: [&str; 3]) -> Result<()> {
    crate::params::check_finite_with(name, x.into_dyn(), |index| {
        let named: Vec<String> = axes
            .iter()
            .zip(index)
            .map(|(axis, i)| format!("{axis} {i}"))
            .collect();
        named.join(", ")
    })
}

/// Token ids have no gradient: asking for one is an error, not zeros.
fn check_input_grad(need_input_grad: bool, tokens: bool) -> Result<()> {
    if need_input_grad && tokens {
        return Err(RnnError::Config(
            "an input gradient was asked of a forward over token ids, which have none".into(),
        ));
    }
    Ok(())
}
