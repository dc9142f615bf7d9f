//! `rnn-wgpu info`: the adapters wgpu sees, the one a GPU model would use, what `train` picks by
//! default, and the chosen adapter's limits.

use std::process::ExitCode;

use rnn_wgpu::Result;
use rnn_wgpu::gpu::{ADAPTER_ENV, GpuContext, describe_adapter, is_software, list_adapters};

pub fn run() -> Result<ExitCode> {
    let adapters = list_adapters();
    println!("adapters ({}):", adapters.len());
    for a in &adapters {
        println!(
            "  {}, driver {} {}",
            describe_adapter(a),
            a.driver,
            a.driver_info
        );
    }
    println!(
        "choice: a real GPU before a software one; {ADAPTER_ENV}=NAME picks by name, WGPU_BACKEND=vulkan|metal|dx12 narrows the backends"
    );
    let hardware = adapters.iter().any(|a| !is_software(a));
    let ctx = GpuContext::new()?;
    println!("--backend gpu uses: {}", describe_adapter(&ctx.info));
    if hardware {
        println!("train's default backend: gpu");
    } else {
        println!(
            "train's default backend: cpu (a software adapter is slower than the CPU path; --backend gpu uses it all the same)"
        );
    }
    let limits = &ctx.limits;
    println!("limits:");
    for (name, value) in [
        ("max_buffer_size", limits.max_buffer_size),
        (
            "max_storage_buffer_binding_size",
            limits.max_storage_buffer_binding_size,
        ),
        (
            "max_storage_buffers_per_shader_stage",
            limits.max_storage_buffers_per_shader_stage.into(),
        ),
        (
            "max_compute_workgroup_storage_size",
            limits.max_compute_workgroup_storage_size.into(),
        ),
        (
            "max_compute_invocations_per_workgroup",
            limits.max_compute_invocations_per_workgroup.into(),
        ),
        (
            "max_compute_workgroups_per_dimension",
            limits.max_compute_workgroups_per_dimension.into(),
        ),
    ] {
        println!("  {name:<38} {value}");
    }
    let f16 = ctx.device.features().contains(wgpu::Features::SHADER_F16);
    println!(
        "f16 inference (SHADER_F16): {}",
        if f16 {
            "yes"
        } else {
            "no (f16 models stay f32)"
        }
    );
    Ok(ExitCode::SUCCESS)
}
