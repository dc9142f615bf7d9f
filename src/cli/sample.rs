//! `rnn-wgpu sample`: text from a trained character model, primed and with a temperature.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rand::SeedableRng;
use rand::rngs::StdRng;

use rnn_wgpu::checkpoint::Checkpoint;
use rnn_wgpu::data::CharCorpus;
use rnn_wgpu::{Result, RnnError};

#[derive(Args, Debug)]
pub struct SampleArgs {
    #[arg(long, default_value = "runs/char_lm/checkpoint.safetensors")]
    checkpoint: PathBuf,
    /// Text to start from (every character must be in the model's vocabulary)
    #[arg(long, default_value = "ROMEO:")]
    prime: String,
    /// Characters to generate
    #[arg(long, default_value_t = 500)]
    len: usize,
    /// Softmax temperature: below 1 sharper, above 1 flatter
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true, value_parser = super::options::positive_f32)]
    temperature: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: SampleArgs) -> Result<ExitCode> {
    let ck = load_checkpoint(&args.checkpoint)?;
    let corpus = CharCorpus {
        vocab: ck.spec.vocab.clone(),
        ids: Vec::new(),
    };
    let prime = corpus.encode(&args.prime)?;
    if prime.is_empty() {
        return Err(RnnError::Config(
            "--prime must have at least one character".into(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{}", args.prime);
    ck.lm
        .sample(&prime, args.len, args.temperature, &mut rng, |next| {
            let _ = write!(out, "{}", corpus.vocab[next]);
        })?;
    let _ = writeln!(out);
    Ok(ExitCode::SUCCESS)
}

/// The checkpoint at `path`, refused with a hint when there is none.
pub fn load_checkpoint(path: &std::path::Path) -> Result<Checkpoint> {
    require_checkpoint(path)?;
    Checkpoint::load(path)
}

/// A missing checkpoint gets where one comes from, not only "no such file".
pub fn require_checkpoint(path: &std::path::Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    Err(RnnError::File {
        path: path.to_path_buf(),
        message:
            "no checkpoint here: train one first (rnn-wgpu train), or name one with --checkpoint"
                .into(),
    })
}
