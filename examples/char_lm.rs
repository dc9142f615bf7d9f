//! What `rnn-wgpu train` does, as library calls: a character LSTM on tiny Shakespeare, then a
//! sample from it.
//!
//!     cargo run --release --example char_lm -- [SECONDS]

use rand::SeedableRng;
use rand::rngs::StdRng;
use rnn_wgpu::checkpoint::LmSpec;
use rnn_wgpu::data::CharCorpus;
use rnn_wgpu::train::{Batching, TrainEvent, TrainOptions, train_char_lm};
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
        stop: None,
    };
    let report = train_char_lm(&corpus, &options, None, |event| {
        if let TrainEvent::Step(s) = event
            && s.step % 50 == 0
        {
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

    // A continuation of a prompt, drawn at temperature 0.8 with the state carried (greedy
    // decoding of a small model falls into loops such as "the the the").
    let mut text = String::from("ROMEO:");
    let mut rng = StdRng::seed_from_u64(0);
    report
        .lm
        .sample(&corpus.encode(&text)?, 200, 0.8, &mut rng, |next| {
            text.push(corpus.vocab[next])
        })?;
    println!("{text}");
    Ok(())
}
