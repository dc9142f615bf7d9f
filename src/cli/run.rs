//! `rnn-wgpu run`: applies a checkpoint to a file, streaming as it reads.
//! A character model reads text: for every character the model's most likely next character is
//! printed as soon as it is computed, and the file's mean cross-entropy per character at the end.
//! A regression model reads CSV rows: after each row, once a look-back window is full, the
//! forecast of the target's next value; at the end its RMSE and MAE against the rows that
//! followed, beside the naive last-value forecast's. `eval` is the same without the echo.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use ndarray::Array2;

use rnn_wgpu::checkpoint::Checkpoint;
use rnn_wgpu::data::{CharCorpus, Fingerprint};
use rnn_wgpu::lm::one_hot;
use rnn_wgpu::nn::ManyToOne;
use rnn_wgpu::regression::{Forecaster, Regressor};
use rnn_wgpu::{Backend, Result, RnnError};

use super::BackendArg;
use super::sample::{Kind, read_checkpoint};

#[derive(Args, Debug)]
pub struct RunArgs {
    #[arg(long, default_value = "runs/char_lm/checkpoint.safetensors")]
    checkpoint: PathBuf,
    /// Text to read one character at a time (character model), or CSV with a header row to
    /// read one row at a time (regression model)
    #[arg(long)]
    input: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    apply(&args.checkpoint, &args.input, args.backend.into(), true)
}

/// Applies the checkpoint at `checkpoint` to `input`; with `echo` every prediction is printed
/// as it comes, and in any case the metrics at the end (`eval` is this without the echo).
pub fn apply(checkpoint: &Path, input: &Path, backend: Backend, echo: bool) -> Result<ExitCode> {
    let file = read_checkpoint(checkpoint)?;
    match Kind::of(&file)? {
        Kind::Regression => run_regression(Regressor::from_file(&file)?, input, backend, echo),
        Kind::Char => run_char_model(Checkpoint::from_file(&file)?, input, backend, echo),
    }
}

fn run_char_model(ck: Checkpoint, input: &Path, backend: Backend, echo: bool) -> Result<ExitCode> {
    let text = rnn_wgpu::data::read_text(input)?;
    let corpus = CharCorpus {
        vocab: ck.spec.vocab.clone(),
        ids: Vec::new(),
    };
    let (ids, skipped) = corpus.encode_known(&text);
    if !skipped.is_empty() {
        let count: usize = skipped.values().sum();
        let listed: Vec<String> = skipped.iter().map(|(c, n)| format!("{c:?} x{n}")).collect();
        eprintln!(
            "warning: skipped {count} characters that are not in the model's vocabulary: {}",
            listed.join(", ")
        );
    }
    if ids.is_empty() {
        return Err(RnnError::File {
            path: input.to_path_buf(),
            message: "no character of this text is in the model's vocabulary".into(),
        });
    }
    // Where the text starts with the one that trained the model, its loss is reported apart
    // for the characters after that part as well.
    let trained = ck
        .trained_on()
        .filter(|t| t.is_prefix_of(ids.iter().map(|&id| [id as u64])))
        .map(|t| t.count);
    let rnn = ck.lm.rnn.with_backend(backend)?;
    let mut stream = rnn.stream(1)?;
    let mut out = std::io::stdout().lock();
    let mut all = MeanLoss::default();
    let mut held_out = MeanLoss::default();
    for (i, &id) in ids.iter().enumerate() {
        let x = one_hot(Array2::from_elem((1, 1), id).view(), corpus.vocab.len())?;
        let h = stream.step(x.index_axis(ndarray::Axis(0), 0))?;
        let logits = ck.lm.head.forward(h.view())?;
        let row = logits.row(0);
        let guess = (0..row.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .expect("non-empty vocabulary");
        if echo {
            let _ = write!(out, "{}", corpus.vocab[guess]);
            let _ = out.flush();
        }
        if let Some(&next) = ids.get(i + 1) {
            // -log_softmax[next] = (max - l_next) + ln(sum exp(l - max)), without cancellation.
            let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
            let loss = ((max - row[next]) + sum.ln()) as f64;
            all.add(loss);
            if trained.is_some_and(|n| i + 1 >= n) {
                held_out.add(loss);
            }
        }
    }
    if echo {
        let _ = writeln!(out);
    }
    let Some(line) = all.line() else {
        return Err(RnnError::File {
            path: input.to_path_buf(),
            message: "one known character: nothing to predict (a next-character loss needs two)"
                .into(),
        });
    };
    if !all.total.is_finite() {
        return Err(RnnError::File {
            path: input.to_path_buf(),
            message: format!(
                "the loss is {} (the model's weights overflow f32 arithmetic)",
                all.total
            ),
        });
    }
    let _ = writeln!(out, "{line}");
    if let Some(n) = trained {
        eprintln!(
            "note: the first {n} characters of this text trained the model (its training split): the loss above counts them too"
        );
        if let Some(line) = held_out.line() {
            let _ = writeln!(out, "held out (the characters after the first {n}): {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Mean next-character loss over the predictions added.
#[derive(Default)]
struct MeanLoss {
    total: f64,
    count: usize,
}

impl MeanLoss {
    fn add(&mut self, loss: f64) {
        self.total += loss;
        self.count += 1;
    }

    /// `loss=... nats/char over N predictions (perplexity ...)`, none without a prediction.
    fn line(&self) -> Option<String> {
        (self.count > 0).then(|| {
            let mean = self.total / self.count as f64;
            format!(
                "loss={mean:.4} nats/char over {} predictions (perplexity {})",
                self.count,
                super::perplexity(mean)
            )
        })
    }
}

fn run_regression(
    regressor: Regressor,
    input: &Path,
    backend: Backend,
    echo: bool,
) -> Result<ExitCode> {
    let Regressor { spec, model } = regressor;
    let regressor = Regressor {
        model: ManyToOne::new(model.rnn.with_backend(backend)?, model.head)?,
        spec,
    };
    let csv_error = |message: String| RnnError::File {
        path: input.to_path_buf(),
        message,
    };
    rnn_wgpu::limits::check_input_file(input)?;
    let mut reader =
        csv::Reader::from_path(input).map_err(|e| csv_error(format!("cannot read CSV: {e}")))?;
    let header = reader
        .headers()
        .map_err(|e| csv_error(format!("CSV header: {e}")))?
        .clone();
    let columns = regressor.spec.columns();
    let at: Vec<usize> = columns
        .iter()
        .map(|name| {
            header
                .iter()
                .position(|h| h.trim() == *name)
                .ok_or_else(|| {
                    csv_error(format!(
                        "no column '{name}' (the model reads {}; the file has {})",
                        columns.join(", "),
                        header.iter().collect::<Vec<_>>().join(", ")
                    ))
                })
        })
        .collect::<Result<_>>()?;
    let target_column = columns
        .iter()
        .position(|c| *c == regressor.spec.target.column)
        .expect("columns() holds the target");
    let mut forecaster = Forecaster::new(&regressor);
    let mut out = std::io::stdout().lock();
    if echo {
        let _ = writeln!(out, "row,forecast_{}", regressor.spec.target.column);
    }
    // (forecast, last value) for the row to come, and the squared errors so far.
    let mut pending: Option<(f64, f64)> = None;
    let mut scores = Scores::default();
    // Where the file starts with the rows that trained the model, the forecasts of the rows
    // after them are scored apart as well: `trained` is their count once the file's first rows
    // are known to be those.
    let training = regressor.spec.trained_on.clone();
    let mut first_rows = Fingerprint::new();
    let mut trained: Option<usize> = None;
    let mut held_out = Scores::default();
    for (row_index, record) in reader.records().enumerate() {
        let line = row_index + 2; // 1-based, after the header
        let record = record.map_err(|e| csv_error(format!("line {line}: {e}")))?;
        let row: Vec<f64> = at
            .iter()
            .zip(&columns)
            .map(|(&i, name)| {
                let field = record.get(i).unwrap_or("").trim();
                // inf and NaN parse as f64 but would make every later forecast NaN; past
                // MAX_VALUE the squared errors of the RMSE overflow f64.
                let value = field.parse::<f64>().ok().filter(|v| v.is_finite());
                match value {
                    Some(v) if v.abs() <= MAX_VALUE => Ok(v),
                    Some(v) => Err(csv_error(format!(
                        "line {line}, column '{name}': {v:e} is beyond +-{MAX_VALUE:e}, past which squared errors overflow f64"
                    ))),
                    None => {
                        // A field as long as the file is shown by its start.
                        let start: String = field.chars().take(40).collect();
                        let cut = if start.len() < field.len() { "..." } else { "" };
                        Err(csv_error(format!(
                            "line {line}, column '{name}': not a finite number: {start:?}{cut}"
                        )))
                    }
                }
            })
            .collect::<Result<_>>()?;
        let actual = row[target_column];
        if let Some((forecast, last)) = pending.take() {
            scores.add(forecast - actual, last - actual);
            if trained.is_some_and(|n| row_index >= n) {
                held_out.add(forecast - actual, last - actual);
            }
        }
        if let Some(t) = training.as_ref().filter(|t| row_index < t.count) {
            // The rows' values as `RegressionSpec::trained_rows` records them.
            first_rows.add(row.iter().map(|v| v.to_bits()));
            if row_index + 1 == t.count && first_rows.hex() == t.fingerprint {
                trained = Some(t.count);
            }
        }
        if let Some(forecast) = forecaster.push(row)? {
            // The forecast is for the next data row.
            if echo {
                let _ = writeln!(out, "{},{forecast}", row_index + 1);
                let _ = out.flush();
            }
            pending = Some((forecast, actual));
        }
    }
    if scores.count == 0 {
        return Err(csv_error(format!(
            "no forecast to score: a look-back window of {} rows needs at least {} data rows",
            regressor.spec.look_back,
            regressor.spec.look_back + 1
        )));
    }
    if !scores.is_finite() {
        return Err(csv_error(
            "the forecast errors overflow f64 (a forecast or value is too large to square): no RMSE to report".into(),
        ));
    }
    let _ = writeln!(out, "{}", scores.line());
    if let Some(n) = trained {
        eprintln!(
            "note: the first {n} rows of this file trained the model: the scores above count forecasts of them too"
        );
        if held_out.count > 0 {
            let _ = writeln!(
                out,
                "held out (the rows after the first {n}): {}",
                held_out.line()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Squared and absolute errors of the model's forecasts and of the naive last-value ones.
#[derive(Default)]
struct Scores {
    model_sq: f64,
    naive_sq: f64,
    model_abs: f64,
    naive_abs: f64,
    count: usize,
}

/// The largest magnitude a CSV value may have: its square, and the squared error of a forecast
/// near it, stay far inside f64 (whose largest is about 1.8e308).
const MAX_VALUE: f64 = 1e150;

impl Scores {
    /// Whether every sum is finite (a forecast that overflowed makes them infinite).
    fn is_finite(&self) -> bool {
        [self.model_sq, self.naive_sq, self.model_abs, self.naive_abs]
            .iter()
            .all(|v| v.is_finite())
    }

    fn add(&mut self, model_error: f64, naive_error: f64) {
        self.model_sq += model_error * model_error;
        self.naive_sq += naive_error * naive_error;
        self.model_abs += model_error.abs();
        self.naive_abs += naive_error.abs();
        self.count += 1;
    }

    fn line(&self) -> String {
        let n = self.count as f64;
        format!(
            "rmse={:.4} mae={:.4} over {} forecasts (naive last value: rmse={:.4} mae={:.4})",
            (self.model_sq / n).sqrt(),
            self.model_abs / n,
            self.count,
            (self.naive_sq / n).sqrt(),
            self.naive_abs / n
        )
    }
}
