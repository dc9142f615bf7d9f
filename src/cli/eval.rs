//! `rnn-wgpu eval`: a checkpoint's metrics on a labelled file, without the predictions `run`
//! prints: a character model's loss and perplexity on a text, a regression model's RMSE and
//! MAE on CSV rows beside the naive last-value forecast's.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use rnn_wgpu::Result;

use super::BackendArg;

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[arg(long, default_value = "runs/char_lm/checkpoint.safetensors")]
    checkpoint: PathBuf,
    /// Text (character model) or CSV with a header row (regression model)
    #[arg(long)]
    data: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
}

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    super::run::apply(&args.checkpoint, &args.data, args.backend.into(), false)
}
