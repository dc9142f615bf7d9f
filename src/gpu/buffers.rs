//! Buffer helpers: f32 and f16 storage buffers in and out, uniform buffers, readback.

use half::slice::HalfFloatSliceExt;

use super::context::GpuContext;
use crate::error::{Result, RnnError};
use crate::limits::human_bytes;

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// How a buffer stores its values: f32, or f16 (f16 inference; arithmetic stays f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
}

impl Precision {
    /// Bytes `len` values take, rounded up to whole 4-byte words (copies move whole words) and
    /// at least one word (zero-sized bindings are invalid).
    pub fn bytes(self, len: usize) -> u64 {
        let bytes = match self {
            Precision::F32 => len * 4,
            Precision::F16 => len * 2,
        };
        bytes.div_ceil(4).max(1) as u64 * 4
    }
}

impl GpuContext {
    /// A storage buffer of `len` f32 zeros; `what` names it in a limit error.
    pub fn zeros(&self, what: &str, len: usize) -> Result<wgpu::Buffer> {
        self.zeros_in(what, len, Precision::F32)
    }

    /// A storage buffer of `len` zeros stored in `precision`.
    pub fn zeros_in(&self, what: &str, len: usize, precision: Precision) -> Result<wgpu::Buffer> {
        let bytes = precision.bytes(len);
        self.check_buffer(what, bytes)?;
        self.create(what, bytes, STORAGE)
    }

    /// A new buffer inside an error scope: running out of device memory is an error naming
    /// the buffer and its bytes, never a panic.
    fn create(&self, what: &str, bytes: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        let scope = || format!("allocating {what} ({})", human_bytes(bytes as u128));
        self.checked_as(scope, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        })
    }

    /// A storage buffer holding `data`.
    pub fn upload(&self, what: &str, data: &[f32]) -> Result<wgpu::Buffer> {
        if data.is_empty() {
            return self.zeros(what, 0);
        }
        self.upload_bytes(what, bytemuck::cast_slice(data))
    }

    /// A storage buffer holding `data` rounded to f16 (padded to a whole number of words).
    pub fn upload_f16(&self, what: &str, data: &[f32]) -> Result<wgpu::Buffer> {
        self.upload_bytes(what, bytemuck::cast_slice(&to_f16_words(data)))
    }

    /// Overwrites the start of a `buffer` stored in `precision` with `data`.
    pub fn write_in(&self, buffer: &wgpu::Buffer, data: &[f32], precision: Precision) {
        match precision {
            Precision::F32 => self.write(buffer, data),
            Precision::F16 if data.is_empty() => {}
            Precision::F16 => self.write_bytes(buffer, bytemuck::cast_slice(&to_f16_words(data))),
        }
    }

    /// A storage buffer holding u32 `data` (not empty).
    pub fn upload_u32(&self, what: &str, data: &[u32]) -> Result<wgpu::Buffer> {
        self.upload_bytes(what, bytemuck::cast_slice(data))
    }

    /// A storage buffer holding `bytes` (not empty), checked against the device's limits.
    fn upload_bytes(&self, what: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        self.check_buffer(what, bytes.len() as u64)?;
        self.created_then_written(what, bytes, STORAGE)
    }

    /// A buffer made inside an error scope and filled by the queue only once it exists: wgpu's
    /// `create_buffer_init` maps the new buffer at once, which panics when the device is out
    /// of memory instead of reporting it to the scope.
    fn created_then_written(
        &self,
        what: &str,
        bytes: &[u8],
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        // Queue writes move whole words: an odd count of f16 values is padded with zeros.
        let padded;
        let bytes = if bytes.len().is_multiple_of(4) {
            bytes
        } else {
            padded = [bytes, &[0; 3][..4 - bytes.len() % 4]].concat();
            &padded
        };
        let buffer = self.create(
            what,
            bytes.len() as u64,
            usage | wgpu::BufferUsages::COPY_DST,
        )?;
        self.write_bytes(&buffer, bytes);
        Ok(buffer)
    }

    /// Overwrites the start of `buffer` with u32 `data` (queued before the next submission).
    pub fn write_u32(&self, buffer: &wgpu::Buffer, data: &[u32]) {
        self.write_bytes(buffer, bytemuck::cast_slice(data));
    }

    /// Overwrites the start of `buffer` with `data` (queued before the next submission).
    pub fn write(&self, buffer: &wgpu::Buffer, data: &[f32]) {
        self.write_bytes(buffer, bytemuck::cast_slice(data));
    }

    /// Queues `bytes` into the start of `buffer`; nothing for none.
    fn write_bytes(&self, buffer: &wgpu::Buffer, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.queue.write_buffer(buffer, 0, bytes);
        }
    }

    /// A uniform buffer holding `bytes`.
    pub fn uniform(&self, what: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        self.created_then_written(what, bytes, wgpu::BufferUsages::UNIFORM)
    }

    /// Records copies of `reads` into new buffers the host can map (for `read_staging` once
    /// the encoder is submitted).
    pub fn stage_copies(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        reads: &[Readback<'_>],
    ) -> Result<Vec<wgpu::Buffer>> {
        reads
            .iter()
            .map(|&(buffer, len, precision)| {
                let bytes = precision.bytes(len);
                let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
                let staging = self.create("a readback buffer", bytes, usage)?;
                encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
                Ok(staging)
            })
            .collect()
    }

    /// Maps the buffers `stage_copies` made for `reads` (after the copies were submitted) and
    /// returns their contents as f32, in order.
    pub fn read_staging(
        &self,
        staging: &[wgpu::Buffer],
        reads: &[Readback<'_>],
    ) -> Result<Vec<Vec<f32>>> {
        let (sender, receiver) = std::sync::mpsc::channel();
        for (i, buffer) in staging.iter().enumerate() {
            let sender = sender.clone();
            buffer.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = sender.send((i, r));
            });
        }
        drop(sender);
        self.wait()?;
        for (i, result) in receiver.iter() {
            result.map_err(|e| RnnError::Gpu(format!("reading back buffer {i}: {e}")))?;
        }
        staging
            .iter()
            .zip(reads)
            .map(|(buffer, &(_, len, precision))| {
                let data = buffer
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| RnnError::Gpu(format!("mapping a readback buffer: {e}")))?;
                let values = match precision {
                    Precision::F32 => bytemuck::cast_slice::<u8, f32>(&data)[..len].to_vec(),
                    Precision::F16 => {
                        let mut values = vec![0.0f32; len];
                        bytemuck::cast_slice::<u8, half::f16>(&data)[..len]
                            .convert_to_f32_slice(&mut values);
                        values
                    }
                };
                drop(data);
                buffer.unmap();
                Ok(values)
            })
            .collect()
    }
}

/// A buffer to read back: the buffer, how many values from its start, how they are stored.
pub type Readback<'a> = (&'a wgpu::Buffer, usize, Precision);

/// f32 -> f16 (round to nearest even), padded to an even count: buffers hold whole 4-byte words.
/// The slice conversion runs 8 values per F16C instruction where the CPU has it; one value per
/// call was the largest cost of an f16 forward with a wide input (BENCHMARKS.md).
fn to_f16_words(data: &[f32]) -> Vec<half::f16> {
    let mut halves = vec![half::f16::ZERO; data.len().div_ceil(2).max(1) * 2];
    halves[..data.len()].convert_from_f32_slice(data);
    halves
}
