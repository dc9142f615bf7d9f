//! One clipped Adam step of the character LM on either backend. On the CPU every gradient and
//! moment is on the host. On the GPU the stack's gradients, Adam moments and updates stay on the
//! device (only each gradient's sum of squares comes back, for the global norm), while the head,
//! a host `Linear`, steps on the host with its own moments.

use ndarray::ArrayView2;

use crate::backend::Backend;
use crate::error::Result;
use crate::gpu::DeviceMoments;
use crate::lm::{CharLm, LmState};
use crate::optim::{Adam, Optimizer, clip_and_step, clip_factor, scale_grads, sum_of_squares};

/// What one step reports.
pub struct StepResult {
    pub loss: f32,
    /// The global L2 norm of every gradient before clipping (0 without clipping).
    pub grad_norm: f32,
    /// The state after the batch, to carry into the next (its gradient cut).
    pub state: LmState,
}

/// Adam (with optional global-norm clipping) over every parameter of one `CharLm`.
pub struct LmOptimizer {
    /// On the CPU: moments of every parameter in `CharLm::named()` order. On the GPU: of the
    /// head's two only (the stack's live on the device, which counts its own steps: the same
    /// count, since both step once per batch).
    adam: Adam,
    clip: Option<f32>,
    on_device: bool,
    /// How many of `named()`'s tensors belong to the stack.
    stack_tensors: usize,
}

impl LmOptimizer {
    /// From `adam` over every parameter of `lm` (fresh, or from a checkpoint); on the GPU
    /// backend the stack's moments move onto the device.
    pub fn new(lm: &CharLm, mut adam: Adam, clip: Option<f32>) -> Result<Self> {
        let on_device = lm.rnn.backend() == Backend::Gpu;
        let stack_tensors = lm.rnn.params().slices().len();
        if on_device && adam.m.len() > stack_tensors {
            let moments = DeviceMoments {
                m: adam.m.drain(..stack_tensors).collect(),
                v: adam.v.drain(..stack_tensors).collect(),
                adam_steps: adam.step,
            };
            lm.rnn.set_device_moments(&moments)?;
        }
        Ok(LmOptimizer {
            adam,
            clip,
            on_device,
            stack_tensors,
        })
    }

    /// Loss and gradients of one batch (inputs, targets (T, B) from `state`), then one clipped
    /// Adam step of every parameter.
    pub fn step(
        &mut self,
        lm: &mut CharLm,
        inputs: ArrayView2<'_, usize>,
        targets: ArrayView2<'_, usize>,
        state: Option<&LmState>,
    ) -> Result<StepResult> {
        if !self.on_device {
            let mut result = lm.loss_and_grads(inputs, targets, state)?;
            let norm = clip_and_step(
                &mut self.adam,
                lm.param_slices_mut(),
                result.grads.slices_mut(),
                self.clip,
            );
            return Ok(StepResult {
                loss: result.loss,
                grad_norm: norm.unwrap_or(0.0),
                state: result.state,
            });
        }
        let mut result = lm.loss_and_device_grads(inputs, targets, state)?;
        let mut head_grads = result.head.slices_mut();
        let stack_sum: f64 = result.rnn_square_sums.iter().map(|&s| s as f64).sum();
        let norm = (sum_of_squares(&head_grads) + stack_sum).sqrt() as f32;
        // One factor for both halves, from the norm over all of them, as clip_grad_norm.
        let scale = self.clip.and_then(|max| clip_factor(norm, max));
        if let Some(coef) = scale {
            scale_grads(&mut head_grads, coef);
        }
        let grads: Vec<&[f32]> = head_grads.iter().map(|g| &**g).collect();
        self.adam.step(&mut lm.head.slices_mut(), &grads);
        lm.rnn
            .adam_step_on_device(&self.adam, scale.unwrap_or(1.0))?;
        Ok(StepResult {
            loss: result.loss,
            grad_norm: if self.clip.is_some() { norm } else { 0.0 },
            state: result.state,
        })
    }

    /// The Adam state over every parameter in `named()` order, the device's moments read back,
    /// and `lm`'s host parameters brought up to date: what a checkpoint holds.
    pub fn snapshot(&self, lm: &mut CharLm) -> Result<Adam> {
        if !self.on_device {
            return Ok(self.adam.clone());
        }
        lm.rnn.sync_params()?;
        let mut adam = self.adam.clone();
        if let Some(DeviceMoments { mut m, mut v, .. }) = lm.rnn.device_moments()? {
            debug_assert_eq!(m.len(), self.stack_tensors);
            m.append(&mut adam.m);
            v.append(&mut adam.v);
            adam.m = m;
            adam.v = v;
        }
        Ok(adam)
    }

    /// Sets the learning rate of the steps that follow.
    pub fn set_lr(&mut self, lr: f32) {
        self.adam.set_lr(lr);
    }
}
