//! The `rnn-wgpu` command line: parity, bench (and train, sample, info as they land).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_window_system();
    quiet_broken_pipe();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // One clear line, never a panic or a backtrace.
            eprintln!("error: {e}");
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

/// Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid or not set" on stderr when they set up
/// window-system support, which compute never uses; give them a private directory when the
/// session has none, so that an error stays the one line this program prints.
fn quiet_window_system() {
    #[cfg(unix)]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        use std::os::unix::fs::DirBuilderExt;
        let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
        let dir = std::env::temp_dir().join(format!("rnn-wgpu-runtime-{user}"));
        if dir.is_dir() || std::fs::DirBuilder::new().mode(0o700).create(&dir).is_ok() {
            // SAFETY: called first thing in main, before any other thread exists.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
}
