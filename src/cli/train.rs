//! `rnn-wgpu train`: a character language model on a text file (tiny Shakespeare by default).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use rnn_wgpu::checkpoint::{Checkpoint, LmSpec};
use rnn_wgpu::data::CharCorpus;
use rnn_wgpu::plot::write_line_svg;
use rnn_wgpu::train::{Batching, TrainOptions, train_char_lm};
use rnn_wgpu::{Backend, Result, RnnError};

use super::{BackendArg, CellArg};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Text to model, one character per token [default: the bundled tiny Shakespeare]
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "lstm")]
    cell: CellArg,
    /// Hidden size H
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Stacked layers
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Characters per sequence (truncated BPTT length)
    #[arg(long, default_value_t = 64)]
    seq: usize,
    /// Sequences per batch
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Adam learning rate
    #[arg(long, default_value_t = 2e-3)]
    lr: f32,
    /// Clip gradients to this global L2 norm
    #[arg(long, default_value_t = 1.0)]
    clip: f32,
    /// Dropout between the stacked layers while training, as PyTorch's `dropout`
    #[arg(long, default_value_t = 0.0)]
    dropout: f32,
    /// Stop after this many optimizer steps in all
    #[arg(long)]
    steps: Option<usize>,
    /// Stop after this many seconds of training in this run [default: 60 when --steps is absent]
    #[arg(long)]
    seconds: Option<f64>,
    /// cpu or gpu [default: gpu when a hardware adapter is there, else cpu]
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
    /// Where the checkpoint and the loss curve go
    #[arg(long, default_value = "runs/char_lm")]
    out: PathBuf,
    /// Continue from OUT/checkpoint.safetensors
    #[arg(long)]
    resume: bool,
    /// Write a checkpoint every this many steps (and at the end)
    #[arg(long, default_value_t = 100)]
    checkpoint_every: usize,
    /// sequential: B contiguous streams, the state carried from batch to batch (truncated
    /// BPTT); random: windows at random offsets, each from a zero state
    #[arg(long, value_enum, default_value = "sequential")]
    batches: BatchesArg,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum BatchesArg {
    Sequential,
    Random,
}

impl From<BatchesArg> for Batching {
    fn from(arg: BatchesArg) -> Self {
        match arg {
            BatchesArg::Sequential => Batching::Sequential,
            BatchesArg::Random => Batching::Random,
        }
    }
}

/// The bundled corpus: beside the working directory, else beside the sources.
fn default_data() -> PathBuf {
    let local = PathBuf::from("data/tinyshakespeare.txt");
    if local.exists() {
        local
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/tinyshakespeare.txt")
    }
}

/// GPU when a hardware adapter is there; a software one (lavapipe) is slower than the CPU path.
fn default_backend() -> Backend {
    let hardware = rnn_wgpu::gpu::list_adapters()
        .iter()
        .any(|a| a.device_type != wgpu::DeviceType::Cpu);
    if hardware { Backend::Gpu } else { Backend::Cpu }
}

pub fn run(args: TrainArgs) -> Result<ExitCode> {
    let data = args.data.clone().unwrap_or_else(default_data);
    let corpus = CharCorpus::read(&data)?;
    let backend = args
        .backend
        .map(Backend::from)
        .unwrap_or_else(default_backend);
    let seconds = args.seconds.or(if args.steps.is_none() {
        Some(60.0)
    } else {
        None
    });
    std::fs::create_dir_all(&args.out).map_err(|e| RnnError::File {
        path: args.out.clone(),
        message: format!("cannot create: {e}"),
    })?;
    let checkpoint = args.out.join("checkpoint.safetensors");
    let spec = LmSpec {
        mode: args.cell.into(),
        vocab: corpus.vocab.clone(),
        hidden: args.hidden,
        layers: args.layers,
    };
    let resume = if args.resume {
        Some(Checkpoint::load(&checkpoint)?)
    } else {
        None
    };
    let opts = TrainOptions {
        spec,
        seq: args.seq,
        batch: args.batch,
        lr: args.lr,
        clip: args.clip,
        dropout: args.dropout,
        steps: args.steps,
        seconds,
        backend,
        batching: args.batches.into(),
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        checkpoint: Some(checkpoint.clone()),
    };
    let (train_len, val_len) = (corpus.split().0.len(), corpus.split().1.len());
    println!(
        "training a {} char model (H={}, L={}, vocab {}) on {} ({} train / {} validation characters) on the {backend} backend",
        args.cell_name(),
        args.hidden,
        args.layers,
        corpus.vocab.len(),
        data.display(),
        train_len,
        val_len
    );
    println!(
        "step 0 baseline: loss should start near ln({}) = {:.3}",
        corpus.vocab.len(),
        (corpus.vocab.len() as f64).ln()
    );
    let bar = match (args.steps, seconds) {
        (Some(n), _) => ProgressBar::new(n as u64),
        (None, _) => ProgressBar::no_length(),
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} step {pos} {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = train_char_lm(&corpus, &opts, resume, |step| {
        bar.set_position(step.step as u64);
        bar.set_message(format!(
            "loss {:.3} ppl {:.1} {:.0} chars/s",
            step.loss,
            step.loss.exp(),
            step.chars_per_sec
        ));
    })?;
    bar.finish_and_clear();
    let points: Vec<(f64, f64)> = report
        .losses
        .iter()
        .map(|&(s, l)| (s as f64, l as f64))
        .collect();
    let plot = args.out.join("loss.svg");
    write_line_svg(
        &plot,
        "training loss (nats per character)",
        &points,
        Some(("validation", report.val_loss as f64)),
    )?;
    let last = report.losses.last().map(|l| l.1).unwrap_or(f32::NAN);
    println!(
        "{} steps in {:.1} s ({:.0} chars/s), last training loss {last:.4}, validation perplexity {:.2}",
        report.steps,
        report.elapsed,
        report.chars_per_sec,
        report.val_loss.exp()
    );
    println!(
        "checkpoint: {}  loss curve: {}",
        checkpoint.display(),
        plot.display()
    );
    println!("val_loss={:.4}", report.val_loss);
    Ok(ExitCode::SUCCESS)
}

impl TrainArgs {
    fn cell_name(&self) -> &'static str {
        rnn_wgpu::bench::cell_name(self.cell.into())
    }
}
