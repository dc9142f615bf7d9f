//! Instance, adapter and device: picks a real GPU over a software one, requests what the adapter
//! offers, and turns wgpu's validation errors into `RnnError`s.

use std::sync::{Arc, Mutex};

use crate::error::{Result, RnnError};

use super::kernels::KernelCache;

/// Environment variable: pick the adapter whose name contains this (case-insensitive).
pub const ADAPTER_ENV: &str = "RNN_WGPU_ADAPTER";

/// A device with its queue and compiled kernels, shared by every GPU model made on it.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub(super) kernels: KernelCache,
    /// Errors outside any error scope, kept for the next check instead of a panic.
    uncaptured: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish()
    }
}

fn instance() -> wgpu::Instance {
    // WGPU_BACKEND (e.g. "vulkan", "metal", "dx12") narrows the backends, as in every wgpu program.
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env())
}

/// Every adapter the instance sees.
pub fn list_adapters() -> Vec<wgpu::AdapterInfo> {
    let instance = instance();
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(|a| a.get_info())
        .collect()
}

/// Real GPUs first, the CPU rasteriser (lavapipe) last.
fn preference(info: &wgpu::AdapterInfo) -> u8 {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

impl GpuContext {
    /// The preferred adapter, or the one `RNN_WGPU_ADAPTER` names.
    pub fn new() -> Result<Arc<Self>> {
        let instance = instance();
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        // Only adapters that can run compute shaders on storage buffers are of use.
        adapters.retain(|a| {
            a.get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        });
        if let Ok(wanted) = std::env::var(ADAPTER_ENV) {
            let wanted = wanted.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&wanted));
            if adapters.is_empty() {
                return Err(RnnError::Gpu(format!(
                    "no adapter's name contains '{wanted}' ({ADAPTER_ENV})"
                )));
            }
        }
        adapters.sort_by_key(|a| preference(&a.get_info()));
        let adapter = adapters.into_iter().next().ok_or_else(|| {
            RnnError::Gpu(
                "no GPU adapter found (install a Vulkan driver, e.g. mesa-vulkan-drivers)".into(),
            )
        })?;
        let info = adapter.get_info();
        // Ask for everything the adapter offers: large models need large storage bindings.
        let limits = adapter.limits();
        // f16 storage and arithmetic where the adapter has it (f16 inference weights).
        let features = adapter.features() & wgpu::Features::SHADER_F16;
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("rnn-wgpu"),
            required_limits: limits.clone(),
            required_features: features,
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&descriptor))
            .map_err(|e| RnnError::Gpu(format!("cannot open {}: {e}", info.name)))?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.to_string());
        }));
        Ok(Arc::new(GpuContext {
            device,
            queue,
            info,
            limits,
            kernels: KernelCache::default(),
            uncaptured,
        }))
    }

    /// Whether the device runs f16 shaders (wgpu's SHADER_F16).
    pub fn has_f16(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_F16)
    }

    /// Runs `f` inside validation and out-of-memory error scopes; an error becomes `RnnError::Gpu`.
    pub fn checked<R>(&self, what: &str, f: impl FnOnce() -> R) -> Result<R> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let result = f();
        let errors = [
            pollster::block_on(validation.pop()),
            pollster::block_on(oom.pop()),
        ];
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(RnnError::Gpu(format!(
                "{what}: {}",
                one_line(&e.to_string())
            )));
        }
        let mut uncaptured = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = uncaptured.drain(..).next() {
            return Err(RnnError::Gpu(format!("{what}: {}", one_line(&e))));
        }
        Ok(result)
    }

    /// Blocks until the queue is idle.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map(drop)
            .map_err(|e| RnnError::Gpu(format!("waiting for the device: {e}")))
    }

    /// Checks a buffer size against the device's limits, naming the one it breaks.
    pub fn check_buffer(&self, what: &str, bytes: u64) -> Result<()> {
        let checks = [
            ("max_buffer_size", self.limits.max_buffer_size),
            (
                "max_storage_buffer_binding_size",
                self.limits.max_storage_buffer_binding_size,
            ),
        ];
        for (limit, allowed) in checks {
            if bytes > allowed {
                return Err(RnnError::DeviceLimit {
                    limit,
                    what: format!("buffer '{what}' (bytes)"),
                    needed: bytes,
                    allowed,
                });
            }
        }
        Ok(())
    }
}

/// wgpu's errors span several lines; a CLI error is one.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
