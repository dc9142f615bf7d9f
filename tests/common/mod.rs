//! Shared by the GPU tests: one device per test binary, and the skip rule. With
//! RNN_WGPU_REQUIRE_GPU=1 (as CI sets it) a missing adapter fails the test; without it the
//! test says it skipped.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use rnn_wgpu::gpu::GpuContext;

pub fn gpu() -> Option<Arc<GpuContext>> {
    static CONTEXT: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    match CONTEXT.get_or_init(|| GpuContext::new().map_err(|e| e.to_string())) {
        Ok(ctx) => Some(ctx.clone()),
        Err(e) if std::env::var("RNN_WGPU_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("RNN_WGPU_REQUIRE_GPU=1 but no GPU: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no GPU adapter ({e})");
            None
        }
    }
}
