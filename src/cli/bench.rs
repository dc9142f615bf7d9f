//! `rnn-wgpu bench --cell lstm|gru|rnn --input I --hidden H --layers L --batch B --seq T
//!  --backend cpu|gpu [--runs N] [--json]`

use std::process::ExitCode;

use clap::Args;

use rnn_wgpu::bench::{self, BenchShape};
use rnn_wgpu::{Result, RnnError};

use super::{BackendArg, CellArg};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "lstm")]
    cell: CellArg,
    /// I: input features
    #[arg(long, default_value_t = 256)]
    input: usize,
    /// H: hidden size
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// L: stacked layers
    #[arg(long, default_value_t = 1)]
    layers: usize,
    /// B: batch size
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// T: sequence length
    #[arg(long, default_value_t = 50)]
    seq: usize,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// One JSON object per line, with torch_rnn_bench.py's field names.
    #[arg(long)]
    json: bool,
    /// Time one streaming step (`--batch` streams, one time step each) instead.
    #[arg(long)]
    stream: bool,
    /// Time the GPU forward in f16 beside f32 (and report parameter and activation memory) instead.
    #[arg(long, conflicts_with = "stream")]
    f16: bool,
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let shape = BenchShape {
        mode: args.cell.into(),
        input: args.input,
        hidden: args.hidden,
        layers: args.layers,
        batch: args.batch,
        seq: args.seq,
    };
    for (what, value) in [
        ("--batch", args.batch),
        ("--seq", args.seq),
        ("--runs", args.runs),
    ] {
        if value == 0 {
            return Err(RnnError::ZeroSize { what: what.into() });
        }
    }
    if args.f16 {
        let r = bench::run_f16(shape, args.runs, args.warmup)?;
        if args.json {
            let cell = rnn_wgpu::bench::cell_name(shape.mode);
            println!(
                "{}",
                serde_json::json!({"peer": concat!("rnn-wgpu ", env!("CARGO_PKG_VERSION")), "device": r.device, "cell": cell,
                    "input": shape.input, "hidden": shape.hidden, "layers": shape.layers, "batch": shape.batch, "seq": shape.seq,
                    "f16": r.f16, "forward_ms_f32": r.forward_ms_f32, "forward_ms_f16": r.forward_ms_f16,
                    "param_bytes_f32": r.param_bytes_f32, "param_bytes_f16": r.param_bytes_f16,
                    "forward_bytes_f32": r.forward_bytes_f32, "forward_bytes_f16": r.forward_bytes_f16, "runs": r.runs})
            );
        } else {
            if !r.f16 {
                println!("note: {} has no SHADER_F16; the f16 run was f32", r.device);
            }
            println!(
                "{shape} on {}: forward f32 {:.3} ms, f16 {:.3} ms; parameter memory {} vs {} bytes, forward activations {} vs {} bytes, median of {}",
                r.device,
                r.forward_ms_f32,
                r.forward_ms_f16,
                r.param_bytes_f32,
                r.param_bytes_f16,
                r.forward_bytes_f32,
                r.forward_bytes_f16,
                r.runs
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.stream {
        let step_ms = bench::stream_step_ms(shape, args.backend.into(), args.runs, args.warmup)?;
        let backend = rnn_wgpu::Backend::from(args.backend);
        if args.json {
            let cell = rnn_wgpu::bench::cell_name(shape.mode);
            println!(
                "{}",
                serde_json::json!({"peer": concat!("rnn-wgpu ", env!("CARGO_PKG_VERSION")), "backend": backend.to_string(), "cell": cell,
                    "input": shape.input, "hidden": shape.hidden, "layers": shape.layers, "batch": shape.batch, "step_ms": step_ms, "runs": args.runs})
            );
        } else {
            println!(
                "{} stream step (B={}, H={}, L={}) on {backend}: {step_ms:.3} ms, median of {}",
                rnn_wgpu::bench::cell_name(shape.mode),
                shape.batch,
                shape.hidden,
                shape.layers,
                args.runs
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let result = bench::run(shape, args.backend.into(), args.runs, args.warmup)?;
    if args.json {
        println!("{}", result.to_json());
    } else {
        println!(
            "{shape} on {}: forward {:.3} ms ({:.1} GFLOP/s), train {:.3} ms ({:.1} GFLOP/s), median of {}",
            result.device,
            result.forward_ms,
            result.forward_gflops(),
            result.train_ms,
            result.train_gflops(),
            result.runs
        );
    }
    Ok(ExitCode::SUCCESS)
}
