//! Many-to-one: a recurrent stack whose last state feeds a linear head (sequence classification,
//! regression on a look-back window), trained one batch at a time.

use ndarray::{Array2, ArrayView2, ArrayView3, Axis};

use super::Linear;
use crate::error::{Result, RnnError};
use crate::model::{OutputGrads, Rnn};
use crate::optim::{Optimizer, clip_and_step};

/// `head(h_T)`, with h_T the last layer's final state.
#[derive(Clone, Debug)]
pub struct ManyToOne {
    pub rnn: Rnn<f32>,
    pub head: Linear,
}

impl ManyToOne {
    /// Only unidirectional stacks: a reverse direction's final state has read the sequence
    /// backwards, which is not "the last step".
    pub fn new(rnn: Rnn<f32>, head: Linear) -> Result<Self> {
        if rnn.config().bidirectional {
            return Err(RnnError::Config(
                "many-to-one takes a unidirectional stack".into(),
            ));
        }
        if head.weight.ncols() != rnn.config().hidden_size {
            return Err(RnnError::Shape {
                tensor: "head.weight".into(),
                expected: format!("(out, {})", rnn.config().hidden_size),
                got: head.weight.shape().to_vec(),
            });
        }
        Ok(ManyToOne { rnn, head })
    }

    /// x (T, B, I) -> (B, out)
    pub fn predict(&self, x: ArrayView3<'_, f32>) -> Result<Array2<f32>> {
        let out = self.rnn.forward(x, None, None)?;
        let last_layer = self.rnn.config().num_layers - 1;
        Ok(self.head.forward(out.h_n.index_axis(Axis(0), last_layer)))
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
        let (out, tape) = self.rnn.forward_train(x, None, None)?;
        let last_layer = self.rnn.config().num_layers - 1;
        let last = out.h_n.index_axis(Axis(0), last_layer);
        let (value, grad_prediction) = loss(self.head.forward(last).view())?;
        let (mut head_grads, grad_last) = self.head.backward(last, grad_prediction.view());
        // Only the last state feeds the head, so only its slot of h_n gets a gradient.
        let mut grad_h_n = ndarray::Array3::zeros(out.h_n.raw_dim());
        grad_h_n
            .index_axis_mut(Axis(0), last_layer)
            .assign(&grad_last);
        let mut grads = self.rnn.backward(
            tape,
            OutputGrads {
                h_n: Some(grad_h_n.view()),
                ..Default::default()
            },
            false,
        )?;
        let mut grad_slices = grads.params.slices_mut();
        grad_slices.extend(head_grads.slices_mut());
        let mut params = self.rnn.params_mut().slices_mut();
        params.extend(self.head.slices_mut());
        clip_and_step(optimizer, params, grad_slices, clip);
        Ok(value)
    }
}
