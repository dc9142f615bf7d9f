//! Sequence classification over token ids, as a PyTorch user writes it: an embedding, a
//! (bidirectional) stack over packed lengths, and a linear head on the last states
//! (`ManyToOne`); trained end to end, the embedding included.

use ndarray::{Array2, ArrayView2};

use super::stack_and_head::Together;
use super::{Embedding, ManyToOne};
use crate::error::{Result, RnnError};
use crate::model::RnnBatch;
use crate::optim::Optimizer;

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
        let (value, mut grads, mut head_grads) = self.model.loss_and_grads(batch, loss, true)?;
        let grad_x = grads.input.take().expect("asked for the input gradient");
        let mut grad_embedding = self.embedding.backward(ids, grad_x.view())?;
        let together = Together {
            leading: vec![(
                self.embedding
                    .weight
                    .as_slice_mut()
                    .expect("standard layout"),
                grad_embedding.as_slice_mut().expect("standard layout"),
            )],
            rnn: &mut self.model.rnn,
            rnn_grads: &mut grads.params,
            head: &mut self.model.head,
            head_grads: &mut head_grads,
        };
        together.step(optimizer, clip);
        Ok(value)
    }
}
