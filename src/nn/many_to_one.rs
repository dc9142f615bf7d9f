//! Many-to-one: a recurrent stack whose last state feeds a linear head (sequence classification,
//! regression on a look-back window), trained one batch at a time.

use ndarray::{Array2, ArrayView2, ArrayView3, Axis, concatenate};

use super::Linear;
use super::linear::LinearGrads;
use super::stack_and_head::Together;
use crate::error::{Result, RnnError};
use crate::model::{OutputGrads, Rnn, RnnBatch, RnnGrads};
use crate::optim::Optimizer;

/// `head(last)`, with `last` the last layer's final state: both directions side by side for a
/// bidirectional stack (`torch.cat([h_n[-2], h_n[-1]], dim=1)`, the forward direction's state
/// after the last step and the reverse one's after the first), each row's own last valid step
/// for a batch with lengths.
#[derive(Clone, Debug)]
pub struct ManyToOne {
    pub rnn: Rnn<f32>,
    pub head: Linear,
}

impl ManyToOne {
    /// The head reads D*H features.
    pub fn new(rnn: Rnn<f32>, head: Linear) -> Result<Self> {
        let features = rnn.config().output_size();
        if head.weight.ncols() != features {
            return Err(RnnError::Shape {
                tensor: "head.weight".into(),
                expected: format!("(out, {features})"),
                got: head.weight.shape().to_vec(),
            });
        }
        Ok(ManyToOne { rnn, head })
    }

    /// x (T, B, I), or (B, T, I) with `batch_first` -> (B, out)
    pub fn predict(&self, x: ArrayView3<'_, f32>) -> Result<Array2<f32>> {
        self.predict_batch(RnnBatch::dense(x))
    }

    /// Any batch (dense or token ids, with lengths, from given states) -> (B, out)
    pub fn predict_batch(&self, batch: RnnBatch<'_, f32>) -> Result<Array2<f32>> {
        let out = self.rnn.forward_batch(batch)?;
        self.head.forward(self.last_states(out.h_n.view()).view())
    }

    /// h_n (L*D, B, H) -> the last layer's final states (B, D*H).
    pub(super) fn last_states(&self, h_n: ArrayView3<'_, f32>) -> Array2<f32> {
        let cfg = self.rnn.config();
        let first = (cfg.num_layers - 1) * cfg.directions();
        let slots: Vec<_> = (first..first + cfg.directions())
            .map(|k| h_n.index_axis(Axis(0), k))
            .collect();
        concatenate(Axis(1), &slots).expect("same batch and width")
    }

    /// dL/d h_n (L*D, B, H) from dL/d(the last states) (B, D*H): only the last layer's final
    /// states feed the head, each direction its H columns.
    fn grad_h_n(&self, dims: ndarray::Ix3, grad_last: ArrayView2<'_, f32>) -> ndarray::Array3<f32> {
        let cfg = self.rnn.config();
        let (first, hidden) = ((cfg.num_layers - 1) * cfg.directions(), cfg.hidden_size);
        let mut grad_h_n = ndarray::Array3::zeros(dims);
        for d in 0..cfg.directions() {
            let columns = grad_last.slice(ndarray::s![.., d * hidden..(d + 1) * hidden]);
            grad_h_n.index_axis_mut(Axis(0), first + d).assign(&columns);
        }
        grad_h_n
    }

    /// One optimizer step on batch x (T, B, I): `loss` maps the predictions (B, out) to the loss
    /// and its gradient; the gradients are clipped to `clip` (global L2 norm) when given.
    /// Returns the loss before the step.
    pub fn train_step(
        &mut self,
        x: ArrayView3<'_, f32>,
        loss: impl FnOnce(ArrayView2<'_, f32>) -> Result<(f32, Array2<f32>)>,
        optimizer: &mut impl Optimizer,
        clip: Option<f32>,
    ) -> Result<f32> {
        self.train_step_batch(RnnBatch::dense(x), loss, optimizer, clip)
    }

    /// The loss on `batch` and every gradient: the stack's (with `need_input_grad`, the input's
    /// too) and the head's; nothing is stepped.
    pub fn loss_and_grads(
        &self,
        batch: RnnBatch<'_, f32>,
        loss: impl FnOnce(ArrayView2<'_, f32>) -> Result<(f32, Array2<f32>)>,
        need_input_grad: bool,
    ) -> Result<(f32, RnnGrads<f32>, LinearGrads)> {
        let (out, tape) = self.rnn.forward_train_batch(batch)?;
        let last = self.last_states(out.h_n.view());
        let (value, grad_prediction) = loss(self.head.forward(last.view())?.view())?;
        let (head_grads, grad_last) = self.head.backward(last.view(), grad_prediction.view())?;
        let grad_h_n = self.grad_h_n(out.h_n.raw_dim(), grad_last.view());
        let upstream = OutputGrads {
            h_n: Some(grad_h_n.view()),
            ..Default::default()
        };
        let grads = self.rnn.backward(tape, upstream, need_input_grad)?;
        Ok((value, grads, head_grads))
    }

    /// `train_step` on any batch (dense or token ids, with lengths, from given states).
    pub fn train_step_batch(
        &mut self,
        batch: RnnBatch<'_, f32>,
        loss: impl FnOnce(ArrayView2<'_, f32>) -> Result<(f32, Array2<f32>)>,
        optimizer: &mut impl Optimizer,
        clip: Option<f32>,
    ) -> Result<f32> {
        let (value, mut grads, mut head_grads) = self.loss_and_grads(batch, loss, false)?;
        let together = Together {
            leading: Vec::new(),
            rnn: &mut self.rnn,
            rnn_grads: &mut grads.params,
            head: &mut self.head,
            head_grads: &mut head_grads,
        };
        together.step(optimizer, clip);
        Ok(value)
    }
}
