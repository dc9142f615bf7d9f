//! Training on the device: BPTT whose gradients stay there, Adam / AdamW and SGD-with-momentum
//! steps there, and the host copy of the parameters refreshed only when asked for (checkpoints,
//! moving the model).

use std::sync::Arc;

use super::{Rnn, Tape, TapeInner};
use crate::error::{Result, RnnError};
use crate::gpu::{DeviceMoments, GpuModel};
use crate::model::OutputGrads;
use crate::optim::{Adam, Sgd};

impl Rnn<f32> {
    fn device(&self, what: &str) -> Result<Arc<GpuModel>> {
        self.gpu_model()?
            .ok_or_else(|| RnnError::Unsupported(format!("{what} on the CPU backend")))
    }

    /// BPTT on the GPU through `tape` with every parameter gradient left on the device for
    /// `adam_step_on_device`; returns each gradient's sum of squares in `named()` order (for
    /// global-norm clipping). Upstream gradients as `backward`.
    pub fn backward_on_device(
        &self,
        tape: Tape<f32>,
        grads: OutputGrads<'_, f32>,
    ) -> Result<Vec<f32>> {
        let gpu = self.device("backward_on_device")?;
        let upstream = self.check_upstream(tape.seq_len, tape.batch, grads)?;
        let TapeInner::Gpu(gpu_tape) = tape.inner else {
            return Err(RnnError::Config("a CPU tape given to a GPU model".into()));
        };
        gpu.backward_in_place(gpu_tape, upstream)?;
        gpu.grad_square_sums()
    }

    /// One Adam / AdamW step of every parameter on the device, from the gradients
    /// `backward_on_device` left there times `grad_scale`, with `adam`'s hyperparameters
    /// (lr, betas, eps, weight decay). The device counts its own steps for the bias correction
    /// (`device_moments().adam_steps`); `adam`'s step count and host moments are not used. The
    /// host copy (`params()`) is stale until `sync_params`; nothing is read back here.
    pub fn adam_step_on_device(&mut self, adam: &Adam, grad_scale: f32) -> Result<()> {
        let gpu = self.device("adam_step_on_device")?;
        gpu.adam_step(adam, grad_scale)?;
        self.device_changed();
        Ok(())
    }

    /// One SGD-with-momentum step (`optim::Sgd`'s lr and momentum) of every parameter on the
    /// device from the gradients `backward_on_device` left there, each multiplied by
    /// `grad_scale` first (the global-norm clip factor, or 1). The momentum buffers live on the
    /// device (`device_moments`' m); `sgd`'s own are not used.
    pub fn sgd_step_on_device(&mut self, sgd: &Sgd, grad_scale: f32) -> Result<()> {
        let gpu = self.device("sgd_step_on_device")?;
        gpu.sgd_step(sgd, grad_scale)?;
        self.device_changed();
        Ok(())
    }

    /// Reads the parameters back from the device when steps there changed them.
    pub fn sync_params(&mut self) -> Result<()> {
        // On the CPU backend the host copy is the only one.
        let Some(device) = &mut self.device else {
            return Ok(());
        };
        if let Some(params) = device.newer_device_params()? {
            self.params = params;
        }
        Ok(())
    }

    fn device_changed(&mut self) {
        if let Some(device) = &mut self.device {
            device.device_changed();
        }
    }

    /// The device's optimizer state: Adam moments (m, v) in `named()` order (m holds SGD's
    /// momentum buffers) and the Adam steps taken there; `None` before the first step there.
    pub fn device_moments(&self) -> Result<Option<DeviceMoments>> {
        self.device("device_moments")?.read_moments()
    }

    /// Sets the device's optimizer state, as `device_moments` returns it (resuming a run).
    pub fn set_device_moments(&self, moments: &DeviceMoments) -> Result<()> {
        self.device("set_device_moments")?.write_moments(moments)
    }
}
