//! `rnn-wgpu sample`: text from a trained character model, primed and with a temperature.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

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
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: SampleArgs) -> Result<ExitCode> {
    if !(args.temperature > 0.0 && args.temperature.is_finite()) {
        return Err(RnnError::Config(format!(
            "--temperature must be positive, got {}",
            args.temperature
        )));
    }
    let ck = Checkpoint::load(&args.checkpoint)?;
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
    // Prime the state with the whole prompt, then feed one character at a time.
    let inputs = Array2::from_shape_fn((prime.len(), 1), |(t, _)| prime[t]);
    let (logits, mut state) = ck.lm.logits(inputs.view(), None)?;
    let mut last = logits
        .index_axis(ndarray::Axis(0), prime.len() - 1)
        .row(0)
        .to_vec();
    for _ in 0..args.len {
        let next = sample(&last, args.temperature, &mut rng);
        let _ = write!(out, "{}", corpus.vocab[next]);
        let input = Array2::from_elem((1, 1), next);
        let (logits, new_state) = ck.lm.logits(input.view(), Some(&state))?;
        state = new_state;
        last = logits.index_axis(ndarray::Axis(0), 0).row(0).to_vec();
    }
    let _ = writeln!(out);
    Ok(ExitCode::SUCCESS)
}

/// A draw from softmax(logits / temperature).
fn sample(logits: &[f32], temperature: f32, rng: &mut StdRng) -> usize {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| (((l - max) / temperature) as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut pick = rng.random_range(0.0..total);
    for (i, w) in weights.iter().enumerate() {
        if pick < *w {
            return i;
        }
        pick -= w;
    }
    weights.len() - 1
}
