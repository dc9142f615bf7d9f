//! Many-to-one sentiment classification (the seed notes' RNN-from-scratch task): one-hot words ->
//! LSTM -> the last hidden state -> Linear(H, 2) -> cross-entropy. Trains on the bundled
//! `sentiment_train.tsv` and reports accuracy on `sentiment_test.tsv`; any SST-2-style TSV
//! (`sentence<TAB>label` with a header row) drops in.
//!
//!     cargo run --release --example sentiment -- [TRAIN.tsv TEST.tsv]

use std::collections::BTreeMap;

use ndarray::Array3;
use rnn_wgpu::nn::{Linear, ManyToOne, cross_entropy};
use rnn_wgpu::optim::Adam;
use rnn_wgpu::{Mode, Rnn, RnnConfig, RnnError};

/// (words, label) rows of a TSV with a header.
fn read_tsv(path: &str) -> rnn_wgpu::Result<Vec<(Vec<String>, usize)>> {
    let text = std::fs::read_to_string(path).map_err(|e| RnnError::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (sentence, label) = line.rsplit_once('\t').ok_or_else(|| RnnError::File {
                path: path.into(),
                message: format!("no tab in {line:?}"),
            })?;
            let label = label.trim().parse().map_err(|_| RnnError::File {
                path: path.into(),
                message: format!("label {label:?} is not 0 or 1"),
            })?;
            Ok((
                sentence
                    .split_whitespace()
                    .map(|w| w.to_lowercase())
                    .collect(),
                label,
            ))
        })
        .collect()
}

/// One sentence as one-hot rows (T, 1, V); words outside the vocabulary are dropped.
fn encode(words: &[String], vocab: &BTreeMap<String, usize>) -> Array3<f32> {
    let ids: Vec<usize> = words.iter().filter_map(|w| vocab.get(w).copied()).collect();
    let mut x = Array3::zeros((ids.len().max(1), 1, vocab.len()));
    for (t, id) in ids.into_iter().enumerate() {
        x[[t, 0, id]] = 1.0;
    }
    x
}

fn main() -> rnn_wgpu::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data/");
    let train_path = args
        .get(1)
        .cloned()
        .unwrap_or(format!("{data}sentiment_train.tsv"));
    let test_path = args
        .get(2)
        .cloned()
        .unwrap_or(format!("{data}sentiment_test.tsv"));
    let (train, test) = (read_tsv(&train_path)?, read_tsv(&test_path)?);
    let mut vocab = BTreeMap::new();
    for (words, _) in &train {
        for w in words {
            let next = vocab.len();
            vocab.entry(w.clone()).or_insert(next);
        }
    }
    let hidden = 32;
    let rnn = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, vocab.len(), hidden), 1)?;
    let mut model = ManyToOne::new(rnn, Linear::new(hidden, 2, 2)?)?;
    let mut adam = Adam::new(5e-3);
    for epoch in 1..=60 {
        let mut total = 0.0;
        for (words, label) in &train {
            let x = encode(words, &vocab);
            total += model.train_step(
                x.view(),
                |logits| cross_entropy(logits, &[*label]),
                &mut adam,
                Some(1.0),
            )?;
        }
        if epoch % 10 == 0 {
            println!(
                "epoch {epoch:3}  mean training loss {:.4}",
                total / train.len() as f32
            );
        }
    }
    let mut correct = 0;
    for (words, label) in &test {
        let logits = model.predict(encode(words, &vocab).view())?;
        let guess = if logits[[0, 1]] > logits[[0, 0]] {
            1
        } else {
            0
        };
        correct += usize::from(guess == *label);
    }
    println!(
        "test accuracy: {correct}/{} = {:.1}%",
        test.len(),
        100.0 * correct as f64 / test.len() as f64
    );
    Ok(())
}
