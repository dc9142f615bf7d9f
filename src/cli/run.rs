//! `rnn-wgpu run`: applies a trained character model to a text file, streaming as it reads: for
//! every character the model's most likely next character is printed as soon as it is computed,
//! and the file's mean cross-entropy per character at the end.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ndarray::Array2;

use rnn_wgpu::checkpoint::Checkpoint;
use rnn_wgpu::data::CharCorpus;
use rnn_wgpu::lm::one_hot;
use rnn_wgpu::{Result, RnnError};

use super::BackendArg;

#[derive(Args, Debug)]
pub struct RunArgs {
    #[arg(long, default_value = "runs/char_lm/checkpoint.safetensors")]
    checkpoint: PathBuf,
    /// Text to read, one character at a time
    #[arg(long)]
    input: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let ck = Checkpoint::load(&args.checkpoint)?;
    let text = std::fs::read_to_string(&args.input).map_err(|e| RnnError::File {
        path: args.input.clone(),
        message: format!("cannot read text: {e}"),
    })?;
    let corpus = CharCorpus {
        vocab: ck.spec.vocab.clone(),
        ids: Vec::new(),
    };
    let ids = corpus.encode(&text)?;
    let rnn = ck.lm.rnn.with_backend(args.backend.into())?;
    let mut stream = rnn.stream(1)?;
    let mut out = std::io::stdout().lock();
    let (mut total, mut count) = (0.0f64, 0usize);
    for (i, &id) in ids.iter().enumerate() {
        let x = one_hot(Array2::from_elem((1, 1), id).view(), corpus.vocab.len())?;
        let h = stream.step(x.index_axis(ndarray::Axis(0), 0))?;
        let logits = ck.lm.head.forward(h.view());
        let row = logits.row(0);
        let guess = (0..row.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .expect("non-empty vocabulary");
        let _ = write!(out, "{}", corpus.vocab[guess]);
        let _ = out.flush();
        if let Some(&next) = ids.get(i + 1) {
            let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let log_sum = max + row.iter().map(|&v| (v - max).exp()).sum::<f32>().ln();
            total += (log_sum - row[next]) as f64;
            count += 1;
        }
    }
    let _ = writeln!(out);
    if count > 0 {
        println!(
            "loss={:.4} nats/char over {count} predictions (perplexity {:.2})",
            total / count as f64,
            (total / count as f64).exp()
        );
    }
    Ok(ExitCode::SUCCESS)
}
