//! `rnn-wgpu train`: a character language model on a text file (tiny Shakespeare by default).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use rnn_wgpu::checkpoint::{Checkpoint, LmSpec};
use rnn_wgpu::data::CharCorpus;
use rnn_wgpu::out_dir::OutDir;
use rnn_wgpu::plot::write_line_svg;
use rnn_wgpu::train::{Batching, StepReport, TrainEvent, TrainOptions, TrainReport, train_char_lm};
use rnn_wgpu::{Backend, Mode, Result, RnnConfig, RnnError};

use super::{BackendArg, CellArg, options};

/// The model and training options: a flag left out takes its default on a fresh run and the
/// checkpoint's value on `--resume` (a flag given there must match the checkpoint).
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Text to model, one character per token [default: the bundled tiny Shakespeare]
    #[arg(long)]
    data: Option<PathBuf>,
    /// [default: lstm]
    #[arg(long, value_enum)]
    cell: Option<CellArg>,
    /// Hidden size H [default: 256]
    #[arg(long, value_parser = options::positive_count)]
    hidden: Option<usize>,
    /// Stacked layers [default: 2]
    #[arg(long, value_parser = options::positive_count)]
    layers: Option<usize>,
    /// Characters per sequence (truncated BPTT length) [default: 64]
    #[arg(long, value_parser = options::positive_count)]
    seq: Option<usize>,
    /// Sequences per batch [default: 32]
    #[arg(long, value_parser = options::positive_count)]
    batch: Option<usize>,
    /// Adam learning rate [default: 2e-3]
    #[arg(long, allow_negative_numbers = true, value_parser = options::positive_f32)]
    lr: Option<f32>,
    /// Clip gradients to this global L2 norm [default: 1.0]
    #[arg(long, allow_negative_numbers = true, value_parser = options::positive_f32)]
    clip: Option<f32>,
    /// Dropout between the stacked layers while training, as PyTorch's `dropout` [default: 0]
    #[arg(long, allow_negative_numbers = true, value_parser = options::probability)]
    dropout: Option<f32>,
    /// Stop after this many optimizer steps in all (a resumed run counts the earlier ones)
    #[arg(long, value_parser = options::positive_count)]
    steps: Option<usize>,
    /// Stop after this many seconds of training in this run [default: 60 when --steps is absent]
    #[arg(long, allow_negative_numbers = true, value_parser = options::positive_seconds)]
    seconds: Option<f64>,
    /// cpu or gpu [default: gpu when a hardware adapter is there, else cpu]
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
    /// Where the checkpoint and the loss curve go
    #[arg(long, default_value = "runs/char_lm")]
    out: PathBuf,
    /// Continue from OUT/checkpoint.safetensors
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start over even though OUT already holds a checkpoint (it is replaced)
    #[arg(long)]
    overwrite: bool,
    /// Write a checkpoint every this many steps (and at the end)
    #[arg(long, default_value_t = 100, value_parser = options::positive_count)]
    checkpoint_every: usize,
    /// sequential: B contiguous streams, the state carried from batch to batch (truncated
    /// BPTT); random: windows at random offsets, each from a zero state [default: sequential]
    #[arg(long, value_enum)]
    batches: Option<BatchesArg>,
    /// Seed of the initial weights, the random batches and the dropout masks [default: 0]
    #[arg(long)]
    seed: Option<u64>,
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

/// The options of this run: the flags given, else the resumed checkpoint's, else the defaults.
struct Resolved {
    mode: Mode,
    hidden: usize,
    layers: usize,
    seq: usize,
    batch: usize,
    lr: f32,
    clip: f32,
    dropout: f32,
    batching: Batching,
    seed: u64,
}

impl Resolved {
    fn new(args: &TrainArgs, resume: Option<&Checkpoint>) -> Self {
        // A value the checkpoint wrote under `key`, if it parses.
        fn saved<V: std::str::FromStr>(ck: Option<&Checkpoint>, key: &str) -> Option<V> {
            ck?.options.get(key)?.parse().ok()
        }
        let batching = args.batches.map(Batching::from).or_else(|| {
            let name = resume?.options.get("batching")?;
            [Batching::Sequential, Batching::Random]
                .into_iter()
                .find(|b| b.name() == name)
        });
        Resolved {
            mode: args
                .cell
                .map(Mode::from)
                .or(resume.map(|ck| ck.spec.mode))
                .unwrap_or(Mode::Lstm),
            hidden: args
                .hidden
                .or(resume.map(|ck| ck.spec.hidden))
                .unwrap_or(256),
            layers: args.layers.or(resume.map(|ck| ck.spec.layers)).unwrap_or(2),
            seq: args.seq.or(saved(resume, "seq")).unwrap_or(64),
            batch: args.batch.or(saved(resume, "batch")).unwrap_or(32),
            lr: args.lr.or(resume.map(|ck| ck.adam.lr)).unwrap_or(2e-3),
            clip: args.clip.or(saved(resume, "clip")).unwrap_or(1.0),
            dropout: args.dropout.or(saved(resume, "dropout")).unwrap_or(0.0),
            batching: batching.unwrap_or(Batching::Sequential),
            seed: args.seed.or(saved(resume, "seed")).unwrap_or(0),
        }
    }
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
    // Created, proven writable and locked now: not found out at the first checkpoint, after
    // the training time is spent, nor shared with a second run.
    let _out = OutDir::claim(&args.out)?;
    let checkpoint = args.out.join("checkpoint.safetensors");
    if checkpoint.exists() && !args.resume && !args.overwrite {
        return Err(RnnError::File {
            path: checkpoint,
            message: "a checkpoint of an earlier run is here: --resume continues it, --overwrite starts over (replacing it), --out DIR writes elsewhere".into(),
        });
    }
    let resume = if args.resume {
        Some(super::sample::load_checkpoint(&checkpoint)?)
    } else {
        None
    };
    let run = Resolved::new(&args, resume.as_ref());
    let config = RnnConfig::new(run.mode, corpus.vocab.len(), run.hidden)
        .layers(run.layers)
        .dropout(run.dropout);
    // Sizes refused before anything is printed or allocated.
    config.validate()?;
    for warning in config.warnings() {
        eprintln!("warning: {warning}");
    }
    let opts = TrainOptions {
        spec: LmSpec {
            mode: run.mode,
            vocab: corpus.vocab.clone(),
            hidden: run.hidden,
            layers: run.layers,
        },
        seq: run.seq,
        batch: run.batch,
        lr: run.lr,
        clip: run.clip,
        dropout: run.dropout,
        steps: args.steps,
        seconds,
        backend,
        batching: run.batching,
        seed: run.seed,
        checkpoint_every: args.checkpoint_every,
        checkpoint: Some(checkpoint.clone()),
    };
    let (train_len, val_len) = (corpus.split().0.len(), corpus.split().1.len());
    println!(
        "training a {} char model (H={}, L={}, vocab {}) on {} ({} train / {} validation characters) on the {backend} backend",
        rnn_wgpu::bench::cell_name(run.mode),
        run.hidden,
        run.layers,
        corpus.vocab.len(),
        data.display(),
        train_len,
        val_len
    );
    let start_step = match &resume {
        Some(ck) => {
            println!("resuming from {} at step {}", checkpoint.display(), ck.step);
            ck.step
        }
        None => {
            println!(
                "an untrained model's loss is near ln({}) = {:.3} nats per character",
                corpus.vocab.len(),
                (corpus.vocab.len() as f64).ln()
            );
            0
        }
    };
    let goal = BarGoal::new(args.steps, seconds);
    let bar = goal.bar(start_step);
    let mut validation: Option<ProgressBar> = None;
    let report = train_char_lm(&corpus, &opts, resume, |event| match event {
        TrainEvent::Step(step) => {
            bar.set_position(goal.position(step));
            bar.set_message(format!(
                "step {}  loss {:.3}  ppl {}  {:.0} chars/s",
                step.step,
                step.loss,
                super::perplexity(step.loss as f64),
                step.chars_per_sec
            ));
        }
        TrainEvent::Validation { done, total } => {
            let indicator = validation.get_or_insert_with(|| {
                bar.finish_and_clear();
                validation_bar(total)
            });
            indicator.set_position(done as u64);
        }
    })?;
    bar.finish_and_clear();
    if let Some(indicator) = validation {
        indicator.finish_and_clear();
    }
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
    println!("{}", summary(&report));
    println!(
        "checkpoint: {}  loss curve: {}",
        checkpoint.display(),
        plot.display()
    );
    println!("val_loss={:.4}", report.val_loss);
    Ok(ExitCode::SUCCESS)
}

/// The run's last line before the file names: this run's steps and time, never a mix of the
/// model's total steps with this run's seconds.
fn summary(report: &TrainReport) -> String {
    let ppl = super::perplexity(report.val_loss as f64);
    let run_steps = report.steps - report.start_step;
    let Some(&(_, last)) = report.losses.last() else {
        return format!(
            "no step in this run (the checkpoint is at step {}), validation perplexity {ppl}",
            report.steps
        );
    };
    let resumed = if report.start_step > 0 {
        format!(
            "; steps {} to {} of the model",
            report.start_step + 1,
            report.steps
        )
    } else {
        String::new()
    };
    format!(
        "{run_steps} steps in {:.1} s ({:.0} chars/s{resumed}), last training loss {last:.4}, validation perplexity {ppl}",
        report.elapsed, report.chars_per_sec
    )
}

/// What the training bar fills towards: the step count of `--steps`, else the time limit (in
/// milliseconds, so that a run of few slow steps still moves it).
#[derive(Clone, Copy, Debug, PartialEq)]
enum BarGoal {
    Steps(u64),
    Millis(u64),
}

impl BarGoal {
    fn new(steps: Option<usize>, seconds: Option<f64>) -> Self {
        match (steps, seconds) {
            (Some(n), _) => BarGoal::Steps(n as u64),
            (None, Some(s)) => BarGoal::Millis((s * 1000.0).round() as u64),
            // The caller always sets one of the two limits.
            (None, None) => BarGoal::Steps(0),
        }
    }

    fn length(self) -> u64 {
        match self {
            BarGoal::Steps(n) | BarGoal::Millis(n) => n,
        }
    }

    fn position(self, step: &StepReport) -> u64 {
        match self {
            BarGoal::Steps(n) => (step.step as u64).min(n),
            BarGoal::Millis(n) => ((step.elapsed * 1000.0) as u64).min(n),
        }
    }

    fn bar(self, start_step: usize) -> ProgressBar {
        let bar = ProgressBar::new(self.length());
        let template = match self {
            BarGoal::Steps(_) => "{elapsed_precise} {wide_bar} {pos}/{len} steps, ETA {eta}  {msg}",
            BarGoal::Millis(_) => "{elapsed_precise} {wide_bar} {percent}%, ETA {eta}  {msg}",
        };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        if let BarGoal::Steps(_) = self {
            bar.set_position(start_step as u64);
            bar.reset_eta();
        }
        bar
    }
}

/// The indicator of the validation pass, which takes seconds on the CPU and minutes on lavapipe.
fn validation_bar(windows: usize) -> ProgressBar {
    let bar = ProgressBar::new(windows as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} validation {wide_bar} {pos}/{len} windows, ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(step: usize, elapsed: f64) -> StepReport {
        StepReport {
            step,
            loss: 1.0,
            elapsed,
            chars_per_sec: 1.0,
        }
    }

    #[test]
    fn a_time_limited_bar_fills_by_time() {
        let goal = BarGoal::new(None, Some(60.0));
        assert_eq!(goal, BarGoal::Millis(60_000));
        let bar = goal.bar(0);
        assert_eq!(bar.length(), Some(60_000));
        assert_eq!(goal.position(&at(3, 15.0)), 15_000);
        assert_eq!(goal.position(&at(9, 61.0)), 60_000);
    }

    #[test]
    fn a_step_limited_bar_fills_by_steps_from_the_resumed_step() {
        let goal = BarGoal::new(Some(200), Some(60.0));
        assert_eq!(goal, BarGoal::Steps(200));
        let bar = goal.bar(150);
        assert_eq!((bar.length(), bar.position()), (Some(200), 150));
        assert_eq!(goal.position(&at(151, 0.5)), 151);
    }

    fn report(start_step: usize, steps: usize) -> TrainReport {
        TrainReport {
            lm: rnn_wgpu::lm::CharLm::new(Mode::Gru, 3, 2, 1, 0).unwrap(),
            start_step,
            losses: (start_step + 1..=steps).map(|s| (s, 2.0)).collect(),
            steps,
            val_loss: 1.0,
            elapsed: 10.1,
            chars_per_sec: 100.0,
        }
    }

    #[test]
    fn a_resumed_summary_counts_this_runs_steps() {
        assert_eq!(
            summary(&report(240, 289)),
            "49 steps in 10.1 s (100 chars/s; steps 241 to 289 of the model), last training loss 2.0000, validation perplexity 2.72"
        );
        assert!(summary(&report(0, 5)).starts_with("5 steps in 10.1 s (100 chars/s), "));
        assert_eq!(
            summary(&report(7, 7)),
            "no step in this run (the checkpoint is at step 7), validation perplexity 2.72"
        );
    }
}
