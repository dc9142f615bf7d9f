//! The seam between `Rnn` and the engines that run its stack: what a forward reads, what BPTT
//! reads, what they return, and the `Engine` trait that the CPU engine (`cpu::CpuEngine`) and
//! the GPU engine (`gpu::GpuModel`) both implement. Everything here is seq-first and already
//! checked by `Rnn` (shapes, finiteness, token ranges, lengths), so an engine computes only.

use ndarray::{Array3, ArrayView2, ArrayView3, CowArray, Ix3};

use crate::Real;
use crate::error::Result;
use crate::params::RnnParams;

/// The first layer's input.
#[derive(Clone, Debug)]
pub enum StackInput<'a, T> {
    /// (T, B, I): the caller's array, or a seq-first copy of a batch-first one
    Dense(CowArray<'a, T, Ix3>),
    /// (T, B): token ids in 0..I standing for one-hot rows of width I. The CPU never builds
    /// them: the projection of a one-hot row is a column of W_ih (a gather), its weight gradient
    /// a scatter-add, which skips a product with I-1 zeros in every row.
    Tokens(ArrayView2<'a, usize>),
}

impl<T> StackInput<'_, T> {
    /// (T, B)
    pub fn seq_batch(&self) -> (usize, usize) {
        match self {
            StackInput::Dense(x) => (x.dim().0, x.dim().1),
            StackInput::Tokens(ids) => ids.dim(),
        }
    }

    pub fn is_tokens(&self) -> bool {
        matches!(self, StackInput::Tokens(_))
    }
}

/// Everything a forward of the stack reads.
#[derive(Clone, Debug)]
pub struct StackInputs<'a, T> {
    pub input: StackInput<'a, T>,
    /// (L*D, B, H): given, or zeros
    pub h0: CowArray<'a, T, Ix3>,
    /// (L*D, B, H), LSTM only
    pub c0: Option<CowArray<'a, T, Ix3>>,
    /// (B), each in 1..=T, for a variable-length batch (PyTorch's packed sequences): outputs
    /// past a row's length are zero and h_n, c_n are each row's own last state.
    pub lengths: Option<&'a [usize]>,
    /// Empty, or one (T, B, D*H) mask per layer but the last, which multiplies that layer's
    /// output on its way up (`crate::dropout`); the CPU keeps them on its tape.
    pub dropout: Vec<Array3<T>>,
}

impl<'a, T> StackInputs<'a, T> {
    /// A full-length dense batch without dropout.
    pub fn dense(
        input: ArrayView3<'a, T>,
        h0: ArrayView3<'a, T>,
        c0: Option<ArrayView3<'a, T>>,
    ) -> Self {
        StackInputs {
            input: StackInput::Dense(input.into()),
            h0: h0.into(),
            c0: c0.map(CowArray::from),
            lengths: None,
            dropout: Vec::new(),
        }
    }

    /// (T, B)
    pub fn seq_batch(&self) -> (usize, usize) {
        self.input.seq_batch()
    }
}

/// Upstream gradients of BPTT, every one present (zeros where the caller gave none).
#[derive(Clone, Debug)]
pub struct StackUpstream<'a, T> {
    /// (T, B, D*H)
    pub output: CowArray<'a, T, Ix3>,
    /// (L*D, B, H)
    pub h_n: CowArray<'a, T, Ix3>,
    /// (L*D, B, H), LSTM only
    pub c_n: Option<CowArray<'a, T, Ix3>>,
}

impl<'a, T> StackUpstream<'a, T> {
    /// Upstream gradients given as views.
    pub fn of(
        output: ArrayView3<'a, T>,
        h_n: ArrayView3<'a, T>,
        c_n: Option<ArrayView3<'a, T>>,
    ) -> Self {
        StackUpstream {
            output: output.into(),
            h_n: h_n.into(),
            c_n: c_n.map(CowArray::from),
        }
    }
}

/// What the forward pass of the whole stack returns.
#[derive(Clone, Debug, PartialEq)]
pub struct StackOutput<T> {
    /// (T, B, D*H): the last layer's hidden state at every step, directions side by side
    pub output: Array3<T>,
    /// (L*D, B, H)
    pub h_n: Array3<T>,
    /// (L*D, B, H), LSTM only
    pub c_n: Option<Array3<T>>,
}

/// Gradients of everything the forward pass read.
#[derive(Clone, Debug, PartialEq)]
pub struct StackGrads<T> {
    /// (T, B, I), when asked for (never for token ids)
    pub input: Option<Array3<T>>,
    /// (L*D, B, H)
    pub h0: Array3<T>,
    /// (L*D, B, H), LSTM only
    pub c0: Option<Array3<T>>,
    /// Same names and shapes as the parameters.
    pub params: RnnParams<T>,
}

/// A place the stack runs: the CPU engine or the GPU engine, with the same results.
pub trait Engine<T: Real> {
    /// What BPTT continues from; it owns what the forward kept (activations on the host or the
    /// device), so any number of tapes can be alive at once.
    type Tape;

    /// A forward pass; with `keep_tape`, also the tape `backward` needs.
    fn forward(
        &self,
        inputs: StackInputs<'_, T>,
        keep_tape: bool,
    ) -> Result<(StackOutput<T>, Option<Self::Tape>)>;

    /// BPTT through the forward that made `tape`; `need_input_grad` adds dLoss/d input.
    fn backward(
        &self,
        tape: Self::Tape,
        upstream: StackUpstream<'_, T>,
        need_input_grad: bool,
    ) -> Result<StackGrads<T>>;

    /// A forward and its BPTT together (the GPU records both into one submission).
    fn forward_backward(
        &self,
        inputs: StackInputs<'_, T>,
        upstream: StackUpstream<'_, T>,
        need_input_grad: bool,
    ) -> Result<(StackOutput<T>, StackGrads<T>)> {
        let (output, tape) = self.forward(inputs, true)?;
        let tape = tape.expect("a forward asked for its tape returns one");
        Ok((output, self.backward(tape, upstream, need_input_grad)?))
    }
}
