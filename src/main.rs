//! The `rnn-wgpu` command line: parity, bench (and train, sample, info as they land).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before any thread exists: it may set an environment variable (see its doc).
    rnn_wgpu::gpu::quiet_window_system();
    quiet_broken_pipe();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // One clear line, never a panic or a backtrace; control bytes a file carried into
            // the message are shown escaped, not sent to the terminal, and a message that
            // echoes a file at length is cut.
            let message = e.to_string();
            let limit = rnn_wgpu::limits::MAX_ERROR_CHARS;
            eprintln!(
                "error: {}",
                rnn_wgpu::limits::printable_capped(&message, limit)
            );
            ExitCode::from(2)
        }
    }
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`rnn-wgpu info | head -1`) would
/// panic; with the default action the process ends silently there, like `cat` or `grep`.
fn quiet_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists; only resets a
    // signal disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
