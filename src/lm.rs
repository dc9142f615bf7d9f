//! The character language model of the seed notes and the `train` command:
//! one_hot(token, V) (as token ids: see `Rnn::forward_tokens`) -> recurrent stack -> Linear(H, V) -> softmax cross-entropy at every step
//! (many-to-many), with the hidden state carried between batches for truncated BPTT.

use ndarray::{Array2, Array3, ArrayD, ArrayView2, ArrayViewD};

use crate::config::RnnConfig;
use crate::conventions::Mode;
use crate::error::{Result, RnnError};
use crate::model::{OutputGrads, Rnn, Tape};
use crate::nn::linear::LinearGrads;
use crate::nn::{Linear, cross_entropy};
use crate::params::RnnParams;

/// Head parameter names, after the stack's PyTorch names.
pub const HEAD: &str = "head";
pub const HEAD_WEIGHT: &str = "head.weight";
pub const HEAD_BIAS: &str = "head.bias";

#[derive(Clone, Debug)]
pub struct CharLm {
    pub rnn: Rnn<f32>,
    pub head: Linear,
}

/// The recurrent state carried from one batch to the next (gradient cut: a plain value).
#[derive(Clone, Debug, PartialEq)]
pub struct LmState {
    /// (L*D, B, H)
    pub h: Array3<f32>,
    /// (L*D, B, H), LSTM only
    pub c: Option<Array3<f32>>,
}

/// Gradients of every parameter, in the model's parameter order.
#[derive(Clone, Debug)]
pub struct LmGrads {
    pub rnn: RnnParams<f32>,
    pub head: LinearGrads,
}

impl LmGrads {
    /// Every gradient tensor's data, in the order of `CharLm::param_slices_mut`.
    pub fn slices_mut(&mut self) -> Vec<&mut [f32]> {
        let mut out = self.rnn.slices_mut();
        out.extend(self.head.slices_mut());
        out
    }
}

/// One batch's loss, the head's gradients and the state to carry on, the stack's gradients left
/// on the device (GPU training).
pub struct LmDeviceStep {
    pub loss: f32,
    pub head: LinearGrads,
    /// Each stack gradient's sum of squares, in `named()` order (their norm, for clipping).
    pub rnn_square_sums: Vec<f32>,
    pub state: LmState,
}

/// One batch's loss, gradients and the state to carry on.
pub struct LmStep {
    pub loss: f32,
    pub grads: LmGrads,
    pub state: LmState,
}

/// (T, B) tokens -> (T, B, V) one-hot rows (for one step of a stream).
pub fn one_hot(tokens: ArrayView2<'_, usize>, vocab: usize) -> Result<Array3<f32>> {
    crate::tokens::one_hot(tokens, vocab)
}

impl CharLm {
    /// A fresh model with PyTorch's default initialisation.
    pub fn new(mode: Mode, vocab: usize, hidden: usize, layers: usize, seed: u64) -> Result<Self> {
        let rnn = Rnn::new(RnnConfig::new(mode, vocab, hidden).layers(layers), seed)?;
        Ok(CharLm {
            rnn,
            head: Linear::new(hidden, vocab, seed.wrapping_add(1))?,
        })
    }

    /// From named tensors (PyTorch names plus `head.weight`, `head.bias`).
    pub fn from_lookup(
        config: RnnConfig,
        mut lookup: impl FnMut(&str) -> Result<Option<ArrayD<f32>>>,
    ) -> Result<Self> {
        let params = RnnParams::from_lookup(&config, &mut lookup)?;
        let (vocab, hidden) = (config.input_size, config.hidden_size);
        let head = Linear::from_lookup(HEAD, (hidden, vocab), lookup)?;
        Ok(CharLm {
            rnn: Rnn::from_params(config, params)?,
            head,
        })
    }

    pub fn vocab(&self) -> usize {
        self.rnn.config().input_size
    }

    /// Every parameter under its name, in `named_parameters()` order.
    pub fn named(&self) -> Vec<(String, ArrayViewD<'_, f32>)> {
        let mut out = self.rnn.params().named(self.rnn.config());
        out.push((HEAD_WEIGHT.into(), self.head.weight.view().into_dyn()));
        out.push((HEAD_BIAS.into(), self.head.bias.view().into_dyn()));
        out
    }

    /// Every parameter's data, mutable, in `named()` order (for the optimizer).
    pub fn param_slices_mut(&mut self) -> Vec<&mut [f32]> {
        let mut out = self.rnn.params_mut().slices_mut();
        out.extend(self.head.slices_mut());
        out
    }

    /// Logits (T, B, V) of `inputs` (T, B) from `state` (zeros when `None`), and the state after.
    pub fn logits(
        &self,
        inputs: ArrayView2<'_, usize>,
        state: Option<&LmState>,
    ) -> Result<(Array3<f32>, LmState)> {
        let out = self.rnn.forward_tokens(
            inputs,
            state.map(|s| s.h.view()),
            state.and_then(|s| s.c.as_ref()).map(|c| c.view()),
        )?;
        let (seq, batch, width) = out.output.dim();
        let flat = out
            .output
            .into_shape_with_order((seq * batch, width))
            .expect("contiguous");
        let logits = self
            .head
            .forward(flat.view())?
            .into_shape_with_order((seq, batch, self.vocab()))
            .expect("contiguous");
        Ok((
            logits,
            LmState {
                h: out.h_n,
                c: out.c_n,
            },
        ))
    }

    /// Generates `len` tokens after `prime` (at least one token), each drawn from
    /// softmax(logits / temperature) with the state carried; `emit` gets each as it is drawn.
    pub fn sample(
        &self,
        prime: &[usize],
        len: usize,
        temperature: f32,
        rng: &mut impl rand::Rng,
        mut emit: impl FnMut(usize),
    ) -> Result<()> {
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(RnnError::Config(format!(
                "temperature must be a finite number above 0, got {temperature}"
            )));
        }
        if prime.is_empty() {
            return Err(RnnError::ZeroSize {
                what: "the prime's length".into(),
            });
        }
        let inputs = Array2::from_shape_fn((prime.len(), 1), |(t, _)| prime[t]);
        let (mut logits, mut state) = self.logits(inputs.view(), None)?;
        for drawn in 1..=len {
            let last = logits.index_axis(ndarray::Axis(0), logits.dim().0 - 1);
            let next = draw(
                last.row(0).as_slice().expect("contiguous"),
                temperature,
                rng,
            )
            .map_err(|(class, value)| RnnError::NonFinite {
                tensor: format!("the logits of sampled character {drawn}"),
                index: vec![class],
                position: format!(
                    "character id {class}: the model's weights overflow f32 arithmetic"
                ),
                value: value as f64,
            })?;
            emit(next);
            (logits, state) = self.logits(Array2::from_elem((1, 1), next).view(), Some(&state))?;
        }
        Ok(())
    }

    /// Mean cross-entropy of predicting `targets` (T, B) from `inputs` (T, B), and every gradient.
    pub fn loss_and_grads(
        &self,
        inputs: ArrayView2<'_, usize>,
        targets: ArrayView2<'_, usize>,
        state: Option<&LmState>,
    ) -> Result<LmStep> {
        let (head_pass, tape) = self.forward_and_head(inputs, targets, state)?;
        let rnn_grads = self.rnn.backward(tape, head_pass.upstream(), false)?;
        Ok(LmStep {
            loss: head_pass.loss,
            grads: LmGrads {
                rnn: rnn_grads.params,
                head: head_pass.head,
            },
            state: head_pass.state,
        })
    }

    /// `loss_and_grads` on the GPU backend with the stack's gradients left on the device for
    /// `Rnn::adam_step_on_device`; the head's come back as usual.
    pub fn loss_and_device_grads(
        &self,
        inputs: ArrayView2<'_, usize>,
        targets: ArrayView2<'_, usize>,
        state: Option<&LmState>,
    ) -> Result<LmDeviceStep> {
        let (head_pass, tape) = self.forward_and_head(inputs, targets, state)?;
        let rnn_square_sums = self.rnn.backward_on_device(tape, head_pass.upstream())?;
        Ok(LmDeviceStep {
            loss: head_pass.loss,
            head: head_pass.head,
            rnn_square_sums,
            state: head_pass.state,
        })
    }

    /// The stack's training forward, the head and the loss, and the gradient of the loss by the
    /// stack's output.
    fn forward_and_head(
        &self,
        inputs: ArrayView2<'_, usize>,
        targets: ArrayView2<'_, usize>,
        state: Option<&LmState>,
    ) -> Result<(HeadPass, Tape<f32>)> {
        if inputs.dim() != targets.dim() {
            return Err(RnnError::Shape {
                tensor: "targets".into(),
                expected: crate::error::shape_string(inputs.shape()),
                got: targets.shape().to_vec(),
            });
        }
        let (out, tape) = self.rnn.forward_train_tokens(
            inputs,
            state.map(|s| s.h.view()),
            state.and_then(|s| s.c.as_ref()).map(|c| c.view()),
        )?;
        let (seq, batch, width) = out.output.dim();
        let flat: Array2<f32> = out
            .output
            .into_shape_with_order((seq * batch, width))
            .expect("contiguous");
        let logits = self.head.forward(flat.view())?;
        let targets: Vec<usize> = targets.iter().copied().collect();
        let (loss, grad_logits) = cross_entropy(logits.view(), &targets)?;
        let (head, grad_flat) = self.head.backward(flat.view(), grad_logits.view())?;
        let grad_output = grad_flat
            .into_shape_with_order((seq, batch, width))
            .expect("contiguous");
        Ok((
            HeadPass {
                loss,
                head,
                grad_output,
                state: LmState {
                    h: out.h_n,
                    c: out.c_n,
                },
            },
            tape,
        ))
    }
}

/// What the head's forward and backward give the stack's backward.
struct HeadPass {
    loss: f32,
    head: LinearGrads,
    /// (T, B, H): dLoss / d(stack output)
    grad_output: Array3<f32>,
    state: LmState,
}

impl HeadPass {
    fn upstream(&self) -> OutputGrads<'_, f32> {
        OutputGrads {
            output: Some(self.grad_output.view()),
            ..Default::default()
        }
    }
}

/// A draw from softmax(logits / temperature), in f64 so that small weights still count; a
/// logit that is not finite is returned (its index and value) instead, as no distribution.
fn draw(
    logits: &[f32],
    temperature: f32,
    rng: &mut impl rand::Rng,
) -> std::result::Result<usize, (usize, f32)> {
    use rand::RngExt;
    if let Some(bad) = logits.iter().position(|v| !v.is_finite()) {
        return Err((bad, logits[bad]));
    }
    // Every logit finite: the largest weighs exp(0) = 1, so the total is at least 1.
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| (((l - max) / temperature) as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut pick = rng.random_range(0.0..total);
    for (i, w) in weights.iter().enumerate() {
        if pick < *w {
            return Ok(i);
        }
        pick -= w;
    }
    Ok(weights.len() - 1)
}
