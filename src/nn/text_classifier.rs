//! Sequence classification over token ids, as a PyTorch user writes it: an embedding, a
//! (bidirectional) stack over packed lengths, and a linear head on the last states
//! (`ManyToOne`); trained end to end, the embedding included.

use ndarray::{Array2, ArrayView2, Axis};

use super::{Embedding, ManyToOne};
use crate::error::{Result, RnnError};
use crate::model::{OutputGrads, RnnBatch};
use crate::optim::{Optimizer, clip_and_step};

/// `head(last states of rnn(embedding(ids)))`.
#[derive(Clone, Debug)]
pub struct TextClassifier {
    pub embedding: Embedding,
    /// The stack (its input the embedding's width) and the head.
    pub model: ManyToOne,
}

impl TextClassifier {
    pub fn new(embedding: Embedding, model: ManyToOne) -> Result<Self> {
        let input = model.rnn.config().input_size;
        if embedding.embedding_dim() != input {
            return Err(RnnError::Shape {
                tensor: "embedding.weight".into(),
                expected: format!("(num, {input}), the stack's input width"),
                got: embedding.weight.shape().to_vec(),
            });
        }
        Ok(TextClassifier { embedding, model })
    }

    /// ids (T, B), or (B, T) with the stack's `batch_first`; lengths (B) -> logits (B, out)
    pub fn predict(&self, ids: ArrayView2<'_, usize>, lengths: &[usize]) -> Result<Array2<f32>> {
        let x = self.embedding.forward(ids)?;
        self.model
            .predict_batch(RnnBatch::dense(x.view()).lengths(lengths))
    }

    /// One optimizer step over every parameter (embedding, stack, head): `loss` maps the
    /// logits (B, out) to the loss and its gradient. Returns the loss before the step.
    pub fn train_step(
        &mut self,
        ids: ArrayView2<'_, usize>,
        lengths: &[usize],
        loss: impl FnOnce(ArrayView2<'_, f32>) -> Result<(f32, Array2<f32>)>,
        optimizer: &mut impl Optimizer,
        clip: Option<f32>,
    ) -> Result<f32> {
        let x = self.embedding.forward(ids)?;
        let batch = RnnBatch::dense(x.view()).lengths(lengths);
        let rnn = &self.model.rnn;
        let (out, tape) = rnn.forward_train_batch(batch)?;
        let last = self.model.last_states(out.h_n.view());
        let head = &self.model.head;
        let (value, grad_logits) = loss(head.forward(last.view()).view())?;
        let (mut head_grads, grad_last) = head.backward(last.view(), grad_logits.view());
        let grad_h_n = self.model.grad_h_n(out.h_n.raw_dim(), grad_last.view());
        let upstream = OutputGrads {
            h_n: Some(grad_h_n.view()),
            ..Default::default()
        };
        let mut grads = rnn.backward(tape, upstream, true)?;
        let grad_x = grads.input.take().expect("asked for the input gradient");
        let mut grad_embedding = self.embedding.backward(ids, grad_x.view())?;
        let mut grad_slices = vec![grad_embedding.as_slice_mut().expect("standard layout")];
        grad_slices.extend(grads.params.slices_mut());
        grad_slices.extend(head_grads.slices_mut());
        let mut params = vec![
            self.embedding
                .weight
                .as_slice_mut()
                .expect("standard layout"),
        ];
        params.extend(self.model.rnn.params_mut().slices_mut());
        params.extend(self.model.head.slices_mut());
        clip_and_step(optimizer, params, grad_slices, clip);
        Ok(value)
    }
}

impl ManyToOne {
    /// dL/d h_n (L*D, B, H) from dL/d(the last states) (B, D*H): only the last layer's final
    /// states feed the head, each direction its H columns.
    pub(super) fn grad_h_n(
        &self,
        dims: ndarray::Ix3,
        grad_last: ArrayView2<'_, f32>,
    ) -> ndarray::Array3<f32> {
        let cfg = self.rnn.config();
        let (first, hidden) = ((cfg.num_layers - 1) * cfg.directions(), cfg.hidden_size);
        let mut grad_h_n = ndarray::Array3::zeros(dims);
        for d in 0..cfg.directions() {
            let columns = grad_last.slice(ndarray::s![.., d * hidden..(d + 1) * hidden]);
            grad_h_n.index_axis_mut(Axis(0), first + d).assign(&columns);
        }
        grad_h_n
    }
}
