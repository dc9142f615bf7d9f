//! `rnn-wgpu info`: the adapters wgpu sees, the one a GPU model would use, and its limits.

use std::process::ExitCode;

use rnn_wgpu::Result;
use rnn_wgpu::gpu::{ADAPTER_ENV, GpuContext, list_adapters};

pub fn run() -> Result<ExitCode> {
    let adapters = list_adapters();
    println!("adapters ({}):", adapters.len());
    for a in &adapters {
        println!(
            "  {} | {:?} | {:?} | driver: {} {}",
            a.name, a.backend, a.device_type, a.driver, a.driver_info
        );
    }
    println!(
        "choice: a real GPU before a CPU adapter; {ADAPTER_ENV}=NAME picks by name, WGPU_BACKEND=vulkan|metal|dx12 narrows the backends"
    );
    let ctx = GpuContext::new()?;
    let (info, limits) = (&ctx.info, &ctx.limits);
    println!(
        "chosen: {} ({:?}, {:?})",
        info.name, info.backend, info.device_type
    );
    println!("limits:");
    println!(
        "  max_buffer_size                      {}",
        limits.max_buffer_size
    );
    println!(
        "  max_storage_buffer_binding_size      {}",
        limits.max_storage_buffer_binding_size
    );
    println!(
        "  max_storage_buffers_per_shader_stage {}",
        limits.max_storage_buffers_per_shader_stage
    );
    println!(
        "  max_compute_workgroup_storage_size   {}",
        limits.max_compute_workgroup_storage_size
    );
    println!(
        "  max_compute_invocations_per_workgroup {}",
        limits.max_compute_invocations_per_workgroup
    );
    println!(
        "  max_compute_workgroups_per_dimension {}",
        limits.max_compute_workgroups_per_dimension
    );
    println!("features: {:?}", ctx.device.features());
    Ok(ExitCode::SUCCESS)
}
