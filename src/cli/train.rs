//! `rnn-wgpu train`: a character language model on a text file (tiny Shakespeare by default).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;

use rnn_wgpu::checkpoint::{Checkpoint, LmSpec};
use rnn_wgpu::data::CharCorpus;
use rnn_wgpu::gpu::{GpuContext, describe_adapter, is_software};
use rnn_wgpu::out_dir::OutDir;
use rnn_wgpu::plot::write_line_svg;
use rnn_wgpu::train::{BEST_FILE, Batching, TrainEvent, TrainOptions, TrainReport, train_char_lm};
use rnn_wgpu::{Backend, Mode, Result, RnnConfig, RnnError};

use super::progress::{BarGoal, TrainProgress};
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

/// GPU when a hardware adapter is there; a software one (lavapipe) is slower than the CPU
/// path, so with only that the CPU, and a note that says so (printed once the run starts).
fn default_backend() -> (Backend, Option<String>) {
    let adapters = rnn_wgpu::gpu::list_adapters();
    if adapters.iter().any(|a| !is_software(a)) {
        return (Backend::Gpu, None);
    }
    let note = adapters.first().map(|software| {
        format!(
            "note: training on the CPU: the only GPU adapter, {}, is slower than the CPU path (--backend gpu uses it all the same)",
            describe_adapter(software)
        )
    });
    (Backend::Cpu, note)
}

/// Ctrl-C (or SIGTERM, SIGHUP) asks the run to stop after the step in flight and write its
/// checkpoint; a second one ends the process at once, leaving the last checkpoint whole (every
/// write is a rename of a finished file).
fn stop_on_signal() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nstopped at once (a checkpoint written before stands whole)");
            std::process::exit(130);
        }
        eprintln!(
            "\nstopping after this step to write a checkpoint (Ctrl-C again to quit at once)"
        );
    })
    .map_err(|e| RnnError::Config(format!("cannot handle Ctrl-C: {e}")))?;
    Ok(stop)
}

/// Where the run computes, for its first line: the CPU's threads or the GPU adapter, warning
/// when that adapter is a software one.
fn describe_backend(backend: Backend) -> Result<String> {
    match backend {
        Backend::Cpu => Ok(format!(
            "the CPU ({} threads)",
            rayon::current_num_threads()
        )),
        Backend::Gpu => {
            let info = &GpuContext::shared()?.info;
            if is_software(info) {
                eprintln!(
                    "warning: {} is a software GPU adapter: expect it to be much slower than --backend cpu",
                    describe_adapter(info)
                );
            }
            Ok(format!("the GPU {}", describe_adapter(info)))
        }
    }
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
    let (backend, backend_note) = match args.backend {
        Some(arg) => (Backend::from(arg), None),
        None => default_backend(),
    };
    // Cheap, pure checks first: a fresh run's model and options are refused as impossible
    // before the output directory is looked at (a resumed run's come from its checkpoint).
    if !args.resume {
        plan(&args, &corpus, backend, None, None)?;
    }
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
    let (mut opts, config) = plan(
        &args,
        &corpus,
        backend,
        resume.as_ref(),
        Some(checkpoint.clone()),
    )?;
    opts.stop = Some(stop_on_signal()?);
    for warning in config.warnings() {
        eprintln!("warning: {warning}");
    }
    let (train_len, val_len) = (corpus.split().0.len(), corpus.split().1.len());
    let device = describe_backend(backend)?;
    if let Some(note) = backend_note {
        eprintln!("{note}");
    }
    println!(
        "training a {} char model (H={}, L={}, vocab {}) on {} ({} train / {} validation characters) on {device}",
        rnn_wgpu::bench::cell_name(opts.spec.mode),
        opts.spec.hidden,
        opts.spec.layers,
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
    if args.overwrite {
        // Starting over, once every check has passed: the replaced run's best model is no
        // yardstick for this one.
        let best = args.out.join(BEST_FILE);
        match std::fs::remove_file(&best) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(RnnError::File {
                    path: best,
                    message: format!("cannot remove the replaced run's best model: {e}"),
                });
            }
            _ => {}
        }
    }
    let mut progress = TrainProgress::new(BarGoal::new(opts.steps, opts.seconds), start_step);
    let result = train_char_lm(&corpus, &opts, resume, |event| match event {
        TrainEvent::Step(step) => progress.step(step),
        TrainEvent::Validation { done, total } => progress.validation(done, total),
    });
    progress.finish();
    let report = match result {
        Err(RnnError::Interrupted { step }) => {
            eprintln!(
                "interrupted after step {step}: {} holds it (--resume continues)",
                checkpoint.display()
            );
            return Ok(ExitCode::from(130));
        }
        other => other?,
    };
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
    if let Some((best, loss)) = &report.best {
        println!(
            "best model by validation loss: {} ({loss:.4})",
            best.display()
        );
    }
    println!("val_loss={:.4}", report.val_loss);
    Ok(ExitCode::SUCCESS)
}

/// The training options of this run (the flags, else `resume`'s, else the defaults), with the
/// model's sizes and every option checked, and the stack's config.
fn plan(
    args: &TrainArgs,
    corpus: &CharCorpus,
    backend: Backend,
    resume: Option<&Checkpoint>,
    checkpoint: Option<PathBuf>,
) -> Result<(TrainOptions, RnnConfig)> {
    let run = Resolved::new(args, resume);
    let config = RnnConfig::new(run.mode, corpus.vocab.len(), run.hidden)
        .layers(run.layers)
        .dropout(run.dropout);
    // Sizes refused before anything is printed or allocated.
    config.validate()?;
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
        seconds: args.seconds.or(if args.steps.is_none() {
            Some(60.0)
        } else {
            None
        }),
        backend,
        batching: run.batching,
        seed: run.seed,
        checkpoint_every: args.checkpoint_every,
        checkpoint,
        stop: None,
    };
    opts.validate()?;
    Ok((opts, config))
}

/// The run's last line before the file names: this run's steps and time, never a mix of the
/// model's total steps with this run's seconds.
fn summary(report: &TrainReport) -> String {
    let (scored, all) = report.val_windows;
    let sampled = if scored < all {
        format!(" (an even sample of {scored} of {all} windows, to keep within --seconds)")
    } else {
        String::new()
    };
    let ppl = format!("{}{sampled}", super::perplexity(report.val_loss as f64));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(start_step: usize, steps: usize) -> TrainReport {
        TrainReport {
            lm: rnn_wgpu::lm::CharLm::new(Mode::Gru, 3, 2, 1, 0).unwrap(),
            start_step,
            losses: (start_step + 1..=steps).map(|s| (s, 2.0)).collect(),
            steps,
            val_loss: 1.0,
            val_windows: (40, 40),
            best: None,
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
        let cut = TrainReport {
            val_windows: (12, 40),
            ..report(0, 5)
        };
        assert!(
            summary(&cut).ends_with(
                "validation perplexity 2.72 (an even sample of 12 of 40 windows, to keep within --seconds)"
            ),
            "{}",
            summary(&cut)
        );
    }
}
