//! One submission to the queue, the way every GPU call makes it: an encoder, recording checked
//! inside error scopes, copies of the buffers to read into staging buffers, the submit (also
//! inside error scopes), and the read-back, each value taken by the handle its read returned
//! rather than by its position in a list.

use super::buffers::{Precision, Readback};
use super::context::GpuContext;
use crate::error::Result;

/// An encoder being recorded, and the buffers to read once it ran.
pub struct Submission<'c, 'b> {
    ctx: &'c GpuContext,
    encoder: wgpu::CommandEncoder,
    reads: Vec<Readback<'b>>,
}

/// Names one buffer read of a submission: `ReadBack::take` gives its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a read is only useful when its values are taken"]
pub struct ReadSlot(usize);

/// What a submission read back.
pub struct ReadBack {
    values: Vec<Option<Vec<f32>>>,
}

impl ReadBack {
    /// The values of `slot`'s buffer, as f32 (f16 buffers widened).
    pub fn take(&mut self, slot: ReadSlot) -> Vec<f32> {
        self.values[slot.0]
            .take()
            .expect("each read is taken once, from the submission that made it")
    }
}

impl<'c, 'b> Submission<'c, 'b> {
    pub fn new(ctx: &'c GpuContext, label: &str) -> Self {
        let encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        Submission {
            ctx,
            encoder,
            reads: Vec::new(),
        }
    }

    /// Records with `record`; a validation or out-of-memory error becomes one naming `what`.
    pub fn record<R>(
        &mut self,
        what: &str,
        record: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<R>,
    ) -> Result<R> {
        let encoder = &mut self.encoder;
        self.ctx.checked(what, || record(encoder))?
    }

    /// Reads the first `len` values of `buffer`, stored in `precision`, after the submission.
    pub fn read(&mut self, buffer: &'b wgpu::Buffer, len: usize, precision: Precision) -> ReadSlot {
        self.reads.push((buffer, len, precision));
        ReadSlot(self.reads.len() - 1)
    }

    /// Reads `len` f32 values of `buffer` after the submission.
    pub fn read_f32(&mut self, buffer: &'b wgpu::Buffer, len: usize) -> ReadSlot {
        self.read(buffer, len, Precision::F32)
    }

    /// Submits; where reads were asked for, waits for the device and reads them back.
    pub fn submit(self, what: &str) -> Result<ReadBack> {
        let Submission {
            ctx,
            mut encoder,
            reads,
        } = self;
        let staging = ctx.stage_copies(&mut encoder, &reads)?;
        ctx.checked(what, || ctx.queue.submit([encoder.finish()]))?;
        let values = if reads.is_empty() {
            Vec::new()
        } else {
            ctx.read_staging(&staging, &reads)?
        };
        Ok(ReadBack {
            values: values.into_iter().map(Some).collect(),
        })
    }

    /// Submits and waits until the device has run it, reading back what was asked for.
    pub fn submit_and_wait(self, what: &str) -> Result<ReadBack> {
        let ctx = self.ctx;
        let read = !self.reads.is_empty();
        let values = self.submit(what)?;
        if !read {
            ctx.wait()?;
        }
        Ok(values)
    }
}
