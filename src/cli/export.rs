//! `rnn-wgpu export`: a checkpoint's stack and head under PyTorch's names, and the PyTorch that
//! loads them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use rnn_wgpu::checkpoint::Checkpoint;
use rnn_wgpu::interop::export_with_head;
use rnn_wgpu::regression::Regressor;
use rnn_wgpu::{Result, RnnError};

use super::sample::{Kind, read_checkpoint};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A checkpoint of `train` (character LM) or of a regression model
    #[arg(long, default_value = "runs/char_lm/checkpoint.safetensors")]
    checkpoint: PathBuf,
    /// The safetensors file to write (`rnn.*` and `head.*` tensors)
    #[arg(long)]
    out: PathBuf,
    /// Replace `--out` if it exists
    #[arg(long)]
    overwrite: bool,
}

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let file = read_checkpoint(&args.checkpoint)?;
    if args.out.exists() && !args.overwrite {
        return Err(RnnError::File {
            path: args.out,
            message: "exists (pass --overwrite to replace it)".into(),
        });
    }
    let (rnn, head, note) = match Kind::of(&file)? {
        Kind::Regression => {
            let model = Regressor::from_file(&file)?.model;
            let note = "# The inputs' log-changes and standardisation stay in the checkpoint (rnn-wgpu run applies them).\n";
            (model.rnn, model.head, note)
        }
        Kind::Char => {
            let lm = Checkpoint::from_file(&file)?.lm;
            let note = "# The character vocabulary is the checkpoint's `vocab` metadata; inputs are one-hot rows.\n";
            (lm.rnn, lm.head, note)
        }
    };
    let loader = export_with_head(&rnn, &head, &args.out)?;
    // Comments, so that the whole of stdout runs as Python.
    println!("# wrote {} ({})", args.out.display(), rnn.config());
    println!("{note}{loader}");
    Ok(ExitCode::SUCCESS)
}
