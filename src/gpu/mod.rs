//! The GPU engine: WGSL kernels (`shaders/`) on wgpu, parameters and activations resident on the
//! device, a whole forward (+ BPTT) recorded into one submission.

mod buffers;
mod context;
mod engine;
#[cfg(test)]
mod kernel_tests;
mod kernels;
mod model;
mod ops;
mod optimizer;
mod params;
mod plan;
mod plan_cache;
mod record;
mod stream;
mod submission;

pub use context::{
    ADAPTER_ENV, GpuContext, describe_adapter, is_software, list_adapters, quiet_window_system,
};
pub use kernels::Kernel;
pub use model::{GpuModel, GpuRun, GpuStats, GpuTape};
pub use optimizer::DeviceMoments;
pub use plan::{DispatchCount, FORWARD_ENV, ForwardVariant, MAX_PERSISTENT_HIDDEN};
pub use plan_cache::{DEFAULT_PLAN_BOUND, PlanLease};
