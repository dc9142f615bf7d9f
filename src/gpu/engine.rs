//! The GPU engine behind the seam `Rnn` calls (`crate::engine::Engine`): a forward, BPTT, or
//! both in one submission, every value read back into host arrays.

use super::model::{GpuModel, GpuTape};
use crate::Real;
use crate::engine::{Engine, StackGrads, StackInputs, StackOutput, StackUpstream};
use crate::error::{Result, RnnError};

impl<T: Real> Engine<T> for GpuModel {
    type Tape = GpuTape;

    fn forward(
        &self,
        inputs: StackInputs<'_, T>,
        keep_tape: bool,
    ) -> Result<(StackOutput<T>, Option<GpuTape>)> {
        let run = self.run(&inputs, None, keep_tape, true)?;
        Ok((read(run.output, "output")?, run.tape))
    }

    fn backward(
        &self,
        tape: GpuTape,
        upstream: StackUpstream<'_, T>,
        need_input_grad: bool,
    ) -> Result<StackGrads<T>> {
        GpuModel::backward(self, tape, upstream, need_input_grad)
    }

    fn forward_backward(
        &self,
        inputs: StackInputs<'_, T>,
        upstream: StackUpstream<'_, T>,
        need_input_grad: bool,
    ) -> Result<(StackOutput<T>, StackGrads<T>)> {
        let run = self.run(&inputs, Some((upstream, need_input_grad)), false, true)?;
        Ok((read(run.output, "output")?, read(run.grads, "gradients")?))
    }
}

fn read<V>(value: Option<V>, what: &str) -> Result<V> {
    value.ok_or_else(|| RnnError::Gpu(format!("no {what} read back")))
}
