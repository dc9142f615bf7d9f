//! Buffer helpers: f32 storage buffers in and out, uniform buffers, readback.

use wgpu::util::DeviceExt;

use super::context::GpuContext;
use crate::error::{Result, RnnError};

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl GpuContext {
    /// A storage buffer of `len` f32 zeros; `what` names it in a limit error.
    pub fn zeros(&self, what: &str, len: usize) -> Result<wgpu::Buffer> {
        // Zero-sized bindings are invalid: keep one element.
        let bytes = (len.max(1) * 4) as u64;
        self.check_buffer(what, bytes)?;
        self.checked(what, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size: bytes,
                usage: STORAGE,
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

    /// Overwrites the start of an f16 `buffer` with `data` rounded to f16.
    pub fn write_f16(&self, buffer: &wgpu::Buffer, data: &[f32]) {
        if !data.is_empty() {
            self.write_bytes(buffer, bytemuck::cast_slice(&to_f16_words(data)));
        }
    }

    /// A storage buffer holding u32 `data` (not empty).
    pub fn upload_u32(&self, what: &str, data: &[u32]) -> Result<wgpu::Buffer> {
        self.upload_bytes(what, bytemuck::cast_slice(data))
    }

    /// A storage buffer holding `bytes` (not empty), checked against the device's limits.
    fn upload_bytes(&self, what: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        self.check_buffer(what, bytes.len() as u64)?;
        self.checked(what, || {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(what),
                    contents: bytes,
                    usage: STORAGE,
                })
        })
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
        self.checked(what, || {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(what),
                    contents: bytes,
                    usage: wgpu::BufferUsages::UNIFORM,
                })
        })
    }

    /// A buffer the host can map after a copy into it.
    pub fn staging(&self, what: &str, len: usize) -> Result<wgpu::Buffer> {
        self.checked(what, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size: (len.max(1) * 4) as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
    }

    /// Maps staging buffers (after their copies were submitted) and returns their contents.
    pub fn read_staging(&self, buffers: &[(&wgpu::Buffer, usize)]) -> Result<Vec<Vec<f32>>> {
        let (sender, receiver) = std::sync::mpsc::channel();
        for (i, (buffer, _)) in buffers.iter().enumerate() {
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
        buffers
            .iter()
            .map(|(buffer, len)| {
                let data = buffer
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| RnnError::Gpu(format!("mapping a readback buffer: {e}")))?;
                let values = bytemuck::cast_slice::<u8, f32>(&data)[..*len].to_vec();
                drop(data);
                buffer.unmap();
                Ok(values)
            })
            .collect()
    }
}

/// f32 -> f16 (round to nearest even), padded to an even count: buffers hold whole 4-byte words.
fn to_f16_words(data: &[f32]) -> Vec<half::f16> {
    let mut halves: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
    if halves.len() % 2 == 1 || halves.is_empty() {
        halves.push(half::f16::ZERO);
    }
    halves
}
