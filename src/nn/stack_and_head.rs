//! The end of a training step the stack-plus-head models share: BPTT from the head's gradient,
//! then one clipped optimizer step over the stack's parameters and the head's together.

use super::Linear;
use super::linear::LinearGrads;
use crate::error::Result;
use crate::model::{OutputGrads, Rnn, Tape};
use crate::optim::{Optimizer, clip_and_step};
use crate::params::RnnParams;

/// BPTT through `tape` from `upstream`, then one step of `optimizer` over every parameter of
/// `rnn` and `head` (gradients clipped to the global L2 norm `clip` when given).
pub(super) fn backward_and_step(
    rnn: &mut Rnn<f32>,
    head: &mut Linear,
    tape: Tape<f32>,
    upstream: OutputGrads<'_, f32>,
    mut head_grads: LinearGrads,
    optimizer: &mut impl Optimizer,
    clip: Option<f32>,
) -> Result<()> {
    let mut grads = rnn.backward(tape, upstream, false)?;
    let together = Together {
        leading: Vec::new(),
        rnn,
        rnn_grads: &mut grads.params,
        head,
        head_grads: &mut head_grads,
    };
    together.step(optimizer, clip);
    Ok(())
}

/// Parameters stepped together, with their gradients: any `leading` ones (an embedding), then
/// the stack's, then the head's, in that order at every step (the optimizer's moments follow it).
pub(super) struct Together<'a> {
    pub leading: Vec<(&'a mut [f32], &'a mut [f32])>,
    pub rnn: &'a mut Rnn<f32>,
    pub rnn_grads: &'a mut RnnParams<f32>,
    pub head: &'a mut Linear,
    pub head_grads: &'a mut LinearGrads,
}

impl Together<'_> {
    /// One step of `optimizer`, gradients clipped to the global L2 norm `clip` when given.
    pub fn step(self, optimizer: &mut impl Optimizer, clip: Option<f32>) {
        let (mut params, mut grads): (Vec<&mut [f32]>, Vec<&mut [f32]>) =
            self.leading.into_iter().unzip();
        grads.extend(self.rnn_grads.slices_mut());
        grads.extend(self.head_grads.slices_mut());
        params.extend(self.rnn.params_mut().slices_mut());
        params.extend(self.head.slices_mut());
        clip_and_step(optimizer, params, grads, clip);
    }
}
