//! What `rnn-wgpu train` does, as library calls: a character LSTM on tiny Shakespeare, then a
//! sample from it.
//!
//!     cargo run --release --example char_lm -- [SECONDS]

use ndarray::Array2;
use rnn_wgpu::checkpoint::LmSpec;
use rnn_wgpu::data::CharCorpus;
use rnn_wgpu::train::{Batching, TrainOptions, train_char_lm};
use rnn_wgpu::{Backend, Mode};

fn main() -> rnn_wgpu::Result<()> {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30.0);
    let corpus = CharCorpus::read(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/tinyshakespeare.txt"
    )))?;
    let options = TrainOptions {
        spec: LmSpec {
            mode: Mode::Lstm,
            vocab: corpus.vocab.clone(),
            hidden: 256,
            layers: 2,
        },
        seq: 64,
        batch: 32,
        lr: 2e-3,
        clip: 1.0,
        dropout: 0.0,
        steps: None,
        seconds: Some(seconds),
        backend: Backend::Cpu,
        batching: Batching::Sequential,
        seed: 0,
        checkpoint_every: 0,
        checkpoint: None,
    };
    let report = train_char_lm(&corpus, &options, None, |s| {
        if s.step % 50 == 0 {
            println!(
                "step {:5}  loss {:.3}  {:.0} chars/s",
                s.step, s.loss, s.chars_per_sec
            );
        }
    })?;
    println!(
        "{} steps in {:.0} s; validation loss {:.4} nats/char (perplexity {:.2})",
        report.steps,
        report.elapsed,
        report.val_loss,
        report.val_loss.exp()
    );

    // Greedy continuation of a prompt, one character at a time with the state carried.
    let prompt = corpus.encode("ROMEO:")?;
    let (mut logits, mut state) = report.lm.logits(
        Array2::from_shape_fn((prompt.len(), 1), |(t, _)| prompt[t]).view(),
        None,
    )?;
    let mut text = String::from("ROMEO:");
    for _ in 0..200 {
        let last = logits
            .index_axis(ndarray::Axis(0), logits.dim().0 - 1)
            .row(0)
            .to_vec();
        let next = (0..last.len())
            .max_by(|&a, &b| last[a].total_cmp(&last[b]))
            .expect("non-empty vocabulary");
        text.push(corpus.vocab[next]);
        (logits, state) = report
            .lm
            .logits(Array2::from_elem((1, 1), next).view(), Some(&state))?;
    }
    println!("{text}");
    Ok(())
}
