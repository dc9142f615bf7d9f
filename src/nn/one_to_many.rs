//! One to many (the seed notes' "1 vs N"): one input vector per sequence producing a sequence,
//! as image captioning or music from a feature. The vector is the input at the first step only
//! (zeros after it) or at every step; a linear head reads every step's output.

use ndarray::{Array2, Array3, ArrayView2, Axis};

use super::Linear;
use super::stack_and_head::backward_and_step;
use crate::error::{Result, RnnError};
use crate::model::{OutputGrads, Rnn};
use crate::optim::Optimizer;

/// Where the input vector enters the sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// At the first step; the input is zeros after it.
    FirstStep,
    /// The same vector at every step.
    EveryStep,
}

/// `head(rnn(inputs(v)))` at every step.
#[derive(Clone, Debug)]
pub struct OneToMany {
    pub rnn: Rnn<f32>,
    pub head: Linear,
    pub feed: Feed,
}

impl OneToMany {
    /// A seq-first stack (its inputs are built here) whose D*H outputs the head reads.
    pub fn new(rnn: Rnn<f32>, head: Linear, feed: Feed) -> Result<Self> {
        let cfg = rnn.config();
        if cfg.batch_first {
            return Err(RnnError::Config(
                "one-to-many builds its inputs seq-first: use a stack without batch_first".into(),
            ));
        }
        if head.weight.ncols() != cfg.output_size() {
            return Err(RnnError::Shape {
                tensor: "head.weight".into(),
                expected: format!("(out, {})", cfg.output_size()),
                got: head.weight.shape().to_vec(),
            });
        }
        Ok(OneToMany { rnn, head, feed })
    }

    /// vectors (B, I) -> the stack's input (T = `steps`, B, I).
    fn inputs(&self, vectors: ArrayView2<'_, f32>, steps: usize) -> Result<Array3<f32>> {
        let input_size = self.rnn.config().input_size;
        if vectors.ncols() != input_size {
            return Err(RnnError::Shape {
                tensor: "one-to-many vectors".into(),
                expected: format!("(B, {input_size})"),
                got: vectors.shape().to_vec(),
            });
        }
        let mut x = Array3::zeros((steps, vectors.nrows(), input_size));
        let fed = match self.feed {
            Feed::FirstStep => steps.min(1),
            Feed::EveryStep => steps,
        };
        for t in 0..fed {
            x.index_axis_mut(Axis(0), t).assign(&vectors);
        }
        Ok(x)
    }

    /// vectors (B, I) -> (T = `steps`, B, out): the head at every step.
    pub fn predict(&self, vectors: ArrayView2<'_, f32>, steps: usize) -> Result<Array3<f32>> {
        let x = self.inputs(vectors, steps)?;
        let out = self.rnn.forward(x.view(), None, None)?;
        let (seq, batch, width) = out.output.dim();
        let rows = out
            .output
            .into_shape_with_order((seq * batch, width))
            .expect("standard");
        let y = self.head.forward(rows.view())?;
        let outputs = y.ncols();
        Ok(y.into_shape_with_order((seq, batch, outputs))
            .expect("rows of (T, B)"))
    }

    /// One optimizer step: `loss` maps the predictions (T*B, out), rows in (t, b) order, to the
    /// loss and its gradient. Returns the loss before the step.
    pub fn train_step(
        &mut self,
        vectors: ArrayView2<'_, f32>,
        steps: usize,
        loss: impl FnOnce(ArrayView2<'_, f32>) -> Result<(f32, Array2<f32>)>,
        optimizer: &mut impl Optimizer,
        clip: Option<f32>,
    ) -> Result<f32> {
        let x = self.inputs(vectors, steps)?;
        let (out, tape) = self.rnn.forward_train(x.view(), None, None)?;
        let dims = out.output.dim();
        let rows = out
            .output
            .into_shape_with_order((dims.0 * dims.1, dims.2))
            .expect("standard");
        let (value, grad_y) = loss(self.head.forward(rows.view())?.view())?;
        let (head_grads, grad_rows) = self.head.backward(rows.view(), grad_y.view())?;
        let grad_output = grad_rows
            .into_shape_with_order(dims)
            .expect("rows of (T, B)");
        let upstream = OutputGrads {
            output: Some(grad_output.view()),
            ..Default::default()
        };
        let (rnn, head) = (&mut self.rnn, &mut self.head);
        backward_and_step(rnn, head, tape, upstream, head_grads, optimizer, clip)?;
        Ok(value)
    }
}
