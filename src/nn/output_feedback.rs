//! The recurrence from the previous output (the seed notes' second structure, also NARX):
//! h_t = tanh(W x_t + U o_{t-1} + b), o_t = V h_t + c. Trained with teacher forcing: the true
//! y_{t-1} stands in for o_{t-1}, so no step waits for another and all of them run as one batch;
//! run free at inference, each step fed the output of the one before.
//!
//! The step is an Elman cell over [x_t; o_{t-1}] started from a zero state (so its W_hh never
//! acts), run as a one-step stack over T*B rows: it computes on either backend.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis, concatenate};

use super::Linear;
use super::stack_and_head::backward_and_step;
use crate::config::RnnConfig;
use crate::conventions::Mode;
use crate::error::{Result, RnnError, shape_string};
use crate::model::{OutputGrads, Rnn};
use crate::optim::Optimizer;

/// W, U and b in `cell` (its input is [x; o]), V and c in `head`.
#[derive(Clone, Debug)]
pub struct OutputFeedback {
    pub cell: Rnn<f32>,
    pub head: Linear,
}

impl OutputFeedback {
    /// PyTorch's default initialisation of an `nn.RNNCell(inputs + outputs, hidden)` and an
    /// `nn.Linear(hidden, outputs)`.
    pub fn new(inputs: usize, hidden: usize, outputs: usize, seed: u64) -> Result<Self> {
        let config = RnnConfig::new(Mode::RnnTanh, inputs + outputs, hidden);
        Ok(OutputFeedback {
            cell: Rnn::new(config, seed)?,
            head: Linear::new(hidden, outputs, seed.wrapping_add(1))?,
        })
    }

    fn outputs(&self) -> usize {
        self.head.weight.nrows()
    }

    /// [x; previous] as one step of T*B rows: (1, T*B, I+O).
    fn step_input(
        &self,
        x: ArrayView3<'_, f32>,
        previous: ArrayView3<'_, f32>,
    ) -> Result<Array3<f32>> {
        let (seq, batch, _) = x.dim();
        let want = [seq, batch, self.outputs()];
        if previous.shape() != want {
            return Err(RnnError::Shape {
                tensor: "previous outputs".into(),
                expected: shape_string(&want),
                got: previous.shape().to_vec(),
            });
        }
        let both = concatenate(Axis(2), &[x, previous]).map_err(|_| RnnError::Shape {
            tensor: "input".into(),
            expected: format!("(T, B, {})", self.cell.config().input_size - self.outputs()),
            got: x.shape().to_vec(),
        })?;
        let features = both.dim().2;
        // Concatenation along the last axis may leave it strided: rows must be contiguous.
        let both = both.as_standard_layout().into_owned();
        Ok(both
            .into_shape_with_order((1, seq * batch, features))
            .expect("standard layout"))
    }

    /// Teacher forcing: x (T, B, I) and the true previous outputs (T, B, O) (y_{t-1}, the
    /// start value at t = 0) -> the outputs o_t (T, B, O), every step at once.
    pub fn forward_teacher(
        &self,
        x: ArrayView3<'_, f32>,
        previous: ArrayView3<'_, f32>,
    ) -> Result<Array3<f32>> {
        let (seq, batch, _) = x.dim();
        let z = self.step_input(x, previous)?;
        let h = self.cell.forward(z.view(), None, None)?.output;
        let o = self.head.forward(h.index_axis(Axis(0), 0))?;
        Ok(o.into_shape_with_order((seq, batch, self.outputs()))
            .expect("rows of (T, B)"))
    }

    /// One optimizer step under teacher forcing: `loss` maps the outputs (T*B, O), rows in
    /// (t, b) order, to the loss and its gradient. Returns the loss before the step.
    pub fn train_step(
        &mut self,
        x: ArrayView3<'_, f32>,
        previous: ArrayView3<'_, f32>,
        loss: impl FnOnce(ArrayView2<'_, f32>) -> Result<(f32, Array2<f32>)>,
        optimizer: &mut impl Optimizer,
        clip: Option<f32>,
    ) -> Result<f32> {
        let z = self.step_input(x, previous)?;
        let (out, tape) = self.cell.forward_train(z.view(), None, None)?;
        let h = out.output.index_axis(Axis(0), 0);
        let (value, grad_o) = loss(self.head.forward(h)?.view())?;
        let (head_grads, grad_h) = self.head.backward(h, grad_o.view())?;
        let grad_output = grad_h.insert_axis(Axis(0));
        let upstream = OutputGrads {
            output: Some(grad_output.view()),
            ..Default::default()
        };
        let (rnn, head) = (&mut self.cell, &mut self.head);
        backward_and_step(rnn, head, tape, upstream, head_grads, optimizer, clip)?;
        Ok(value)
    }

    /// Free running: x (T, B, I) and o_{-1} (B, O) -> (T, B, O), each step fed the output of
    /// the step before (one stack call per step).
    pub fn run_free(
        &self,
        x: ArrayView3<'_, f32>,
        start: ArrayView2<'_, f32>,
    ) -> Result<Array3<f32>> {
        let (seq, batch, _) = x.dim();
        let mut previous = start.to_owned();
        let mut outputs = Array3::zeros((seq, batch, self.outputs()));
        for t in 0..seq {
            let x_t = x.slice(ndarray::s![t..t + 1, .., ..]);
            let o = self.forward_teacher(x_t, previous.view().insert_axis(Axis(0)))?;
            previous = o.index_axis_move(Axis(0), 0);
            outputs.index_axis_mut(Axis(0), t).assign(&previous);
        }
        Ok(outputs)
    }
}
