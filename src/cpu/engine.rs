//! The CPU engine: the stack on ndarray, run on rayon's pool, its tape's buffers recycled
//! through the model's workspace.

use super::stack::{self, StackTape};
use super::{Workspace, on_thread_pool};
use crate::Real;
use crate::config::RnnConfig;
use crate::engine::{Engine, StackGrads, StackInputs, StackOutput, StackUpstream};
use crate::error::Result;
use crate::params::RnnParams;

/// A model's parameters and workspace, borrowed for one call.
pub struct CpuEngine<'a, T> {
    pub config: &'a RnnConfig,
    pub params: &'a RnnParams<T>,
    pub workspace: &'a Workspace<T>,
}

impl<T: Real> Engine<T> for CpuEngine<'_, T> {
    type Tape = StackTape<T>;

    fn forward(
        &self,
        inputs: StackInputs<'_, T>,
        keep_tape: bool,
    ) -> Result<(StackOutput<T>, Option<StackTape<T>>)> {
        let (output, tape) =
            on_thread_pool(|| stack::forward(self.config, self.params, inputs, self.workspace));
        if keep_tape {
            return Ok((output, Some(tape)));
        }
        // Inference: the tape's buffers go straight back to the workspace.
        tape.recycle(self.workspace);
        Ok((output, None))
    }

    fn backward(
        &self,
        tape: StackTape<T>,
        upstream: StackUpstream<'_, T>,
        need_input_grad: bool,
    ) -> Result<StackGrads<T>> {
        Ok(on_thread_pool(|| {
            stack::backward(
                self.config,
                self.params,
                tape,
                upstream,
                need_input_grad,
                self.workspace,
            )
        }))
    }
}
