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

/// Mesa's device-selection layer asks the Wayland library for a display at every Vulkan
/// instance, which prints "XDG_RUNTIME_DIR is invalid or not set" when the session has none;
/// compute needs no display. Gives the process a private directory, once, if it has none. The
/// library does this before its first instance; a program that can should call it first thing
/// in `main`, before any other thread exists (as `rnn-wgpu` does).
pub fn quiet_window_system() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(unix)]
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            use std::os::unix::fs::DirBuilderExt;
            let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
            let dir = std::env::temp_dir().join(format!("rnn-wgpu-runtime-{user}"));
            if dir.is_dir() || std::fs::DirBuilder::new().mode(0o700).create(&dir).is_ok() {
                // SAFETY: once per process, before this library's first Vulkan instance. The
                // one hazard left is another thread reading the environment at this instant,
                // which is why `main` should call this before it starts threads.
                unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
            }
        }
    });
}

fn instance() -> wgpu::Instance {
    quiet_window_system();
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

/// Whether an adapter is a software rasteriser (lavapipe, llvmpipe, WARP): it runs the kernels
/// on the CPU, slower there than the CPU engine.
pub fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

/// An adapter in a few words for a person: its name, graphics API and kind, e.g.
/// `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, software: runs on the CPU)`.
pub fn describe_adapter(info: &wgpu::AdapterInfo) -> String {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Other => "unknown kind",
        wgpu::DeviceType::Cpu => "software: runs on the CPU",
    };
    format!("{} ({:?}, {kind})", info.name, info.backend)
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
    /// The process's one device (what `Rnn::with_backend(Backend::Gpu)` uses): opened by the
    /// first call, as `new` does, and the same context for every call after it, as PyTorch keeps
    /// one CUDA context per device. A failure is not kept: the next call tries again.
    pub fn shared() -> Result<Arc<Self>> {
        static SHARED: Mutex<Option<Arc<GpuContext>>> = Mutex::new(None);
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ctx) = slot.as_ref() {
            return Ok(ctx.clone());
        }
        let ctx = GpuContext::new()?;
        *slot = Some(ctx.clone());
        Ok(ctx)
    }

    /// A new device on the preferred adapter, or on the one `RNN_WGPU_ADAPTER` names, with
    /// every limit the adapter offers (large models need large storage bindings).
    pub fn new() -> Result<Arc<Self>> {
        GpuContext::open(None)
    }

    /// A new device as `new`, held to `limits` (which the adapter must meet): with
    /// `wgpu::Limits::default()`, a device as any WebGPU adapter is guaranteed to be.
    pub fn with_limits(limits: wgpu::Limits) -> Result<Arc<Self>> {
        GpuContext::open(Some(limits))
    }

    fn open(limits: Option<wgpu::Limits>) -> Result<Arc<Self>> {
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
        let limits = limits.unwrap_or_else(|| adapter.limits());
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
        self.checked_as(|| what.to_string(), f)
    }

    /// `checked` with the name made only when there is an error to report (a name with a
    /// formatted size would otherwise cost a `format!` per buffer made, per submission).
    pub fn checked_as<R>(&self, what: impl Fn() -> String, f: impl FnOnce() -> R) -> Result<R> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let result = f();
        let errors = [
            pollster::block_on(validation.pop()),
            pollster::block_on(oom.pop()),
        ];
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(RnnError::Gpu(format!(
                "{}: {}",
                what(),
                one_line(&e.to_string())
            )));
        }
        let mut uncaptured = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = uncaptured.drain(..).next() {
            return Err(RnnError::Gpu(format!("{}: {}", what(), one_line(&e))));
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
