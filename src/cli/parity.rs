//! `rnn-wgpu parity CASE... [--backend cpu|gpu] [--out RESULT]`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use rnn_wgpu::gpu::GpuContext;
use rnn_wgpu::parity::run_case;
use rnn_wgpu::{Result, RnnError};

use super::BackendArg;

#[derive(Args, Debug)]
pub struct ParityArgs {
    /// Case files written by PyTorch (format rnn-parity/1).
    #[arg(required = true)]
    cases: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
    /// Write every computed tensor here (with several cases: one file per case, named after it).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The exit status of `--backend gpu` without an adapter: no case ran, which is not a failure
/// of any case (1) nor of an input (2).
const NO_GPU_ADAPTER: u8 = 3;

/// Prints one line per tensor and a summary; exits 1 when any tensor is out of tolerance.
pub fn run(args: ParityArgs) -> Result<ExitCode> {
    if let BackendArg::Gpu = args.backend
        && let Err(e) = GpuContext::shared()
    {
        // Said once, instead of a FAIL per case that would read as wrong results.
        eprintln!("error: no case ran: {e}");
        return Ok(ExitCode::from(NO_GPU_ADAPTER));
    }
    let outputs: Vec<Option<PathBuf>> = args
        .cases
        .iter()
        .map(|case| {
            args.out
                .as_ref()
                .map(|out| result_path(out, case, args.cases.len()))
        })
        .collect();
    refuse_overwriting_a_case(&args.cases, &outputs)?;
    let mut failed_cases = 0;
    for (case, output) in args.cases.iter().zip(&outputs) {
        let report = match run_case(case, args.backend.into()) {
            Ok(report) => report,
            Err(e) => {
                // A case that cannot run fails alone; the others still report.
                println!("{}: FAIL: {e}", case.display());
                failed_cases += 1;
                continue;
            }
        };
        println!("{} ({}, {}):", case.display(), report.kind, report.mode);
        for check in &report.checks {
            let verdict = if check.passed() { "PASS" } else { "FAIL" };
            let note = check
                .problem
                .as_deref()
                .map(|p| format!("  ({p})"))
                .unwrap_or_default();
            println!(
                "  {verdict} {:<28} max_abs_err={:.3e} tol={:.1e}{note}",
                check.name, check.max_abs_err, check.tolerance
            );
        }
        if !report.passed() {
            failed_cases += 1;
        }
        if let Some(path) = output {
            report.write(path).map_err(|e| RnnError::File {
                path: path.clone(),
                message: e.to_string(),
            })?;
        }
    }
    let total = args.cases.len();
    println!("{} of {total} cases passed", total - failed_cases);
    Ok(if failed_cases == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Where `--out` puts the result of `case`: OUT itself for one case, else one file per case
/// beside OUT, named after the case.
fn result_path(out: &Path, case: &Path, cases: usize) -> PathBuf {
    if cases == 1 {
        out.to_path_buf()
    } else {
        let stem = case.file_stem().unwrap_or_default().to_string_lossy();
        out.with_file_name(format!("{stem}.result.safetensors"))
    }
}

/// A result written over a PyTorch case would destroy the reference (and with several cases a
/// result could replace a case still to run): refused before any case runs.
fn refuse_overwriting_a_case(cases: &[PathBuf], outputs: &[Option<PathBuf>]) -> Result<()> {
    let same_file = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    for output in outputs.iter().flatten() {
        if let Some(case) = cases.iter().find(|case| same_file(case, output)) {
            return Err(RnnError::File {
                path: output.clone(),
                message: format!(
                    "--out would overwrite the case {} (an input): name another file",
                    case.display()
                ),
            });
        }
    }
    Ok(())
}
