//! `rnn-wgpu sample`: text from a trained character model, primed and with a temperature.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use rand::SeedableRng;
use rand::rngs::StdRng;

use rnn_wgpu::checkpoint::Checkpoint;
use rnn_wgpu::data::CharCorpus;
use rnn_wgpu::regression;
use rnn_wgpu::tensor_file::TensorFile;
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

/// The character model's checkpoint at `path`, refused with a hint when there is none or when
/// it is a regression model's.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    let file = read_checkpoint(path)?;
    match Kind::of(&file)? {
        Kind::Char => Checkpoint::from_file(&file),
        Kind::Regression => Err(RnnError::File {
            path: path.to_path_buf(),
            message: "a regression model's checkpoint (it forecasts CSV rows), not a character model's: `rnn-wgpu run --checkpoint FILE --input ROWS.csv` applies it, `rnn-wgpu eval` scores it".into(),
        }),
    }
}

/// The two kinds of checkpoint the commands read.
pub enum Kind {
    /// A character language model (`train`'s).
    Char,
    /// A regression model (the `timeseries` example's).
    Regression,
}

impl Kind {
    /// The kind of a checkpoint read: by its `format`; a file without one is no checkpoint of
    /// ours (a PyTorch state_dict, a parity case), said so with the command that lists it.
    pub fn of(file: &TensorFile) -> Result<Kind> {
        match file.metadata().get("format").map(String::as_str) {
            Some(regression::FORMAT) => Ok(Kind::Regression),
            Some(_) => Ok(Kind::Char),
            None => Err(RnnError::File {
                path: file.path().to_path_buf(),
                message: "not an rnn-wgpu checkpoint (its metadata names no format): `rnn-wgpu inspect` lists what it holds".into(),
            }),
        }
    }
}

/// The file at `path`, refused with a hint when there is none.
pub fn read_checkpoint(path: &Path) -> Result<TensorFile> {
    require_checkpoint(path)?;
    TensorFile::read(path)
}

/// A missing checkpoint gets where one comes from, not only "no such file".
fn require_checkpoint(path: &Path) -> Result<()> {
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
