//! The `rnn-wgpu` command line: parity, bench (and train, sample, info as they land).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
