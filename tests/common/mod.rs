//! Shared by the GPU tests: one device per test binary, and the skip rule. With
//! RNN_WGPU_REQUIRE_GPU=1 (as CI sets it) a missing adapter fails the test; without it the
//! test reports that it skipped, past the harness's output capture, and the test binary ends
//! with a count of the GPU tests it skipped.

#![allow(dead_code)]

pub mod cli;
pub mod files;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, Once, OnceLock};

use rnn_wgpu::gpu::GpuContext;

pub fn gpu() -> Option<Arc<GpuContext>> {
    static CONTEXT: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    match CONTEXT.get_or_init(|| GpuContext::new().map_err(|e| e.to_string())) {
        Ok(ctx) => Some(ctx.clone()),
        Err(e) if std::env::var("RNN_WGPU_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("RNN_WGPU_REQUIRE_GPU=1 but no GPU: {e}")
        }
        Err(e) => {
            report_skip(e);
            None
        }
    }
}

/// The tests that skipped (a test may ask for the GPU several times).
static SKIPPED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// The harness captures `print!` and `eprint!` of passing tests, so a skip written that way
/// would vanish; a write to the stderr handle itself is not captured.
fn report_skip(reason: &str) {
    // libtest names each test's thread after the test.
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let mut skipped = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
    if !skipped.insert(test.clone()) {
        return;
    }
    let _ = writeln!(
        std::io::stderr(),
        "skipped: no GPU adapter: {test} ({reason})"
    );
    static SUMMARY: Once = Once::new();
    #[cfg(unix)]
    SUMMARY.call_once(|| {
        // SAFETY: registers a plain function with no captured state to run at exit.
        unsafe { libc::atexit(print_skip_summary) };
    });
}

/// After the harness's own `test result:` line: how many GPU tests this binary skipped.
extern "C" fn print_skip_summary() {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe.file_stem().unwrap_or_default().to_string_lossy();
    // Cargo names test binaries NAME-HASH.
    let binary = stem.rsplit_once('-').map_or(&*stem, |(name, _)| name);
    let count = SKIPPED.lock().map_or(0, |s| s.len());
    let tests = if count == 1 { "test" } else { "tests" };
    let _ = writeln!(
        std::io::stderr(),
        "{binary}: {count} GPU {tests} skipped: no GPU adapter (RNN_WGPU_REQUIRE_GPU=1 fails them instead)"
    );
}
