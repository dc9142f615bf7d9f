//! The training loop of the character language model (what `rnn-wgpu train` and the `char_lm`
//! example run): sequential batches with the state carried between them (truncated BPTT, the
//! gradient cut at each batch), global-norm clipping, Adam (on the device for the GPU backend:
//! `lm_optimizer`), periodic atomic checkpoints.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ndarray::Array2;

use crate::backend::Backend;
use crate::checkpoint::{Checkpoint, LmSpec, TRAINED_ON_KEY};
use crate::data::{Batches, CharCorpus, RandomBatches, SequentialBatches, validation_windows};
use crate::error::{Result, RnnError};
use crate::lm::{CharLm, LmState};
use crate::lm_optimizer::LmOptimizer;
use crate::nn::cross_entropy;
use crate::optim::Adam;

/// How the training text is cut into batches (see `data::Batches`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batching {
    Sequential,
    Random,
}

impl Batching {
    pub fn name(self) -> &'static str {
        match self {
            Batching::Sequential => "sequential",
            Batching::Random => "random",
        }
    }
}

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub spec: LmSpec,
    pub seq: usize,
    pub batch: usize,
    pub lr: f32,
    pub clip: f32,
    /// Dropout between the stacked layers while training (PyTorch's `dropout`).
    pub dropout: f32,
    /// Stop after this many optimizer steps in all (a resumed run counts the earlier ones).
    pub steps: Option<usize>,
    /// The wall-clock time of this run, training and validation together: training stops
    /// early enough to leave the validation pass its estimated time (at most a quarter of the
    /// budget), and a validation pass that would still overrun scores an even sample of the
    /// windows (`TrainReport::val_windows` says how many).
    pub seconds: Option<f64>,
    pub backend: Backend,
    /// Sequential batches carry the state (truncated BPTT); random ones start from zero.
    pub batching: Batching,
    pub seed: u64,
    pub checkpoint_every: usize,
    /// Where checkpoints go; none are written without it.
    pub checkpoint: Option<PathBuf>,
    /// Set (from another thread, a signal handler) to stop: the step in flight ends, the
    /// checkpoint is written and the run returns `RnnError::Interrupted`.
    pub stop: Option<Arc<AtomicBool>>,
}

impl TrainOptions {
    /// The rules `rnn-wgpu train` enforces on its flags, for every caller (and for options a
    /// resumed checkpoint supplies): sizes of at least 1, a finite lr and clip above 0, a
    /// finite time limit above 0.
    pub fn validate(&self) -> Result<()> {
        for (what, value) in [("seq", self.seq), ("batch", self.batch)] {
            if value == 0 {
                return Err(RnnError::ZeroSize { what: what.into() });
            }
        }
        if self.seq.checked_mul(self.batch).is_none() {
            return Err(RnnError::Config(format!(
                "a batch of {} x {} characters is larger than any text",
                self.batch, self.seq
            )));
        }
        for (what, value) in [("lr", self.lr), ("clip", self.clip)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(RnnError::Config(format!(
                    "{what} must be a finite number above 0, got {value}"
                )));
            }
        }
        if self.seconds.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
            return Err(RnnError::Config(
                "the time limit must be a finite number of seconds above 0".into(),
            ));
        }
        // The dropout's range is the model config's to check (`RnnConfig::validate`, through
        // `with_dropout`), with the same message.
        Ok(())
    }

    /// The options a resumed run must share with the checkpoint.
    fn fixed(&self) -> HashMap<String, String> {
        [
            ("seq", self.seq.to_string()),
            ("batch", self.batch.to_string()),
            ("clip", self.clip.to_string()),
            ("dropout", self.dropout.to_string()),
            ("seed", self.seed.to_string()),
            ("batching", self.batching.name().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// After every step.
pub struct StepReport {
    pub step: usize,
    pub loss: f32,
    pub elapsed: f64,
    pub chars_per_sec: f64,
}

/// What the training loop tells its caller as it goes.
pub enum TrainEvent<'a> {
    /// After every optimizer step.
    Step(&'a StepReport),
    /// After each group of validation windows: `done` of `total` windows evaluated.
    Validation { done: usize, total: usize },
}

pub struct TrainReport {
    pub lm: CharLm,
    /// The step the run started from: 0, or the resumed checkpoint's.
    pub start_step: usize,
    /// (step, training loss) of every step of this run.
    pub losses: Vec<(usize, f32)>,
    pub steps: usize,
    /// Mean loss per character over the validation windows scored.
    pub val_loss: f32,
    /// (scored, all) validation windows: fewer than all where the time limit cut the pass.
    pub val_windows: (usize, usize),
    /// The best checkpoint by validation loss after this run, with its loss, where the run
    /// writes checkpoints (`BEST_FILE` beside them).
    pub best: Option<(PathBuf, f32)>,
    pub elapsed: f64,
    pub chars_per_sec: f64,
}

/// Trains from scratch, or from `resume` (checked against the options), and reports.
pub fn train_char_lm(
    corpus: &CharCorpus,
    opts: &TrainOptions,
    resume: Option<Checkpoint>,
    mut on_event: impl FnMut(TrainEvent<'_>),
) -> Result<TrainReport> {
    opts.validate()?;
    let (train_ids, val_ids) = corpus.split();
    let batches = match opts.batching {
        Batching::Sequential => {
            Batches::Sequential(SequentialBatches::new(train_ids, opts.batch, opts.seq)?)
        }
        Batching::Random => Batches::Random(RandomBatches::new(
            train_ids, opts.batch, opts.seq, opts.seed,
        )?),
    };
    if validation_windows(val_ids, opts.seq).is_empty() {
        return Err(crate::error::RnnError::Config(format!(
            "the validation text ({} characters, the last 10%) is shorter than one window of {} characters",
            val_ids.len(),
            opts.seq + 1
        )));
    }
    let (lm, adam, mut step, mut state) = match resume {
        Some(ck) => {
            ck.check_matches(&opts.spec, &opts.fixed())?;
            (ck.lm, ck.adam, ck.step, ck.state)
        }
        None => {
            let s = &opts.spec;
            (
                CharLm::new(s.mode, s.vocab.len(), s.hidden, s.layers, opts.seed)?,
                Adam::new(opts.lr),
                0,
                None,
            )
        }
    };
    let mut lm = CharLm {
        rnn: lm
            .rnn
            .with_dropout(opts.dropout)?
            .with_backend(opts.backend)?,
        head: lm.head,
    };
    let mut optimizer = LmOptimizer::new(&lm, adam, Some(opts.clip))?;
    optimizer.set_lr(opts.lr);
    let writer = CheckpointWriter::new(opts, corpus);
    let save = |lm: &mut CharLm,
                optimizer: &LmOptimizer,
                step: usize,
                state: &Option<LmState>|
     -> Result<()> {
        match &opts.checkpoint {
            Some(path) => writer.write(path, lm, optimizer, step, state, None),
            None => Ok(()),
        }
    };
    let start = Instant::now();
    let mut losses = Vec::new();
    let chars_per_step = (opts.seq * opts.batch) as f64;
    let first_step = step;
    let validation_groups = validation_windows(val_ids, opts.seq)
        .len()
        .div_ceil(opts.batch);
    loop {
        let elapsed = start.elapsed().as_secs_f64();
        let mean_step = elapsed / (step - first_step).max(1) as f64;
        let reserve = validation_reserve(mean_step, validation_groups, opts.seconds);
        if opts.steps.is_some_and(|n| step >= n)
            || opts.seconds.is_some_and(|s| elapsed + reserve >= s)
        {
            break;
        }
        if opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            save(&mut lm, &optimizer, step, &state)?;
            return Err(RnnError::Interrupted { step });
        }
        let (inputs, targets, new_pass) = batches.get(step);
        if new_pass {
            state = None;
        }
        // Masks from (seed, step): a resumed run drops what an uninterrupted one would.
        lm.rnn
            .seed_dropout(opts.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step as u64);
        let result = optimizer.step(&mut lm, inputs.view(), targets.view(), state.as_ref())?;
        if !result.loss.is_finite() {
            return Err(RnnError::Diverged {
                step: step + 1,
                what: "training loss",
                value: result.loss,
            });
        }
        // The carried state is a plain value: the gradient is cut here (the notes' "detach").
        state = Some(result.state);
        step += 1;
        losses.push((step, result.loss));
        let elapsed = start.elapsed().as_secs_f64();
        let chars_per_sec = (step - first_step) as f64 * chars_per_step / elapsed.max(1e-9);
        on_event(TrainEvent::Step(&StepReport {
            step,
            loss: result.loss,
            elapsed,
            chars_per_sec,
        }));
        if opts.checkpoint_every > 0 && step % opts.checkpoint_every == 0 {
            save(&mut lm, &optimizer, step, &state)?;
        }
    }
    save(&mut lm, &optimizer, step, &state)?;
    // The parameters a GPU run stepped on the device, on the host for the caller.
    lm.rnn.sync_params()?;
    let elapsed = start.elapsed().as_secs_f64();
    let chars_per_sec = (step - first_step) as f64 * chars_per_step / elapsed.max(1e-9);
    let deadline = opts.seconds.map(|s| start + Duration::from_secs_f64(s));
    let validation = validation_loss(
        &lm,
        val_ids,
        opts.seq,
        opts.batch,
        deadline,
        |done, total| on_event(TrainEvent::Validation { done, total }),
    )?;
    let val_loss = validation.loss;
    if !val_loss.is_finite() {
        return Err(RnnError::Diverged {
            step,
            what: "validation loss",
            value: val_loss,
        });
    }
    let best_kept = keep_best(
        opts.checkpoint.as_deref(),
        val_loss,
        corpus.vocab.len(),
        step,
        |best| writer.write(best, &mut lm, &optimizer, step, &state, Some(val_loss)),
    )?;
    Ok(TrainReport {
        lm,
        start_step: first_step,
        losses,
        steps: step,
        val_loss,
        val_windows: (validation.windows, validation.of),
        best: best_kept,
        elapsed,
        chars_per_sec,
    })
}

/// The best checkpoint by validation loss, beside `checkpoint.safetensors`.
pub const BEST_FILE: &str = "best.safetensors";

/// The metadata key of the validation loss a best checkpoint scored.
pub const VAL_LOSS_KEY: &str = "val_loss";

/// Writes the run's checkpoints: the model, the Adam state, the step and carried state, and
/// what a checkpoint records beside them (the options a resume must share, the text that
/// trained it, so that `eval` on that text can say so).
struct CheckpointWriter<'a> {
    spec: &'a LmSpec,
    options: HashMap<String, String>,
}

impl<'a> CheckpointWriter<'a> {
    fn new(opts: &'a TrainOptions, corpus: &CharCorpus) -> Self {
        let mut options = opts.fixed();
        options.insert(
            TRAINED_ON_KEY.into(),
            serde_json::to_string(&corpus.trained_on()).expect("plain fields serialise"),
        );
        CheckpointWriter {
            spec: &opts.spec,
            options,
        }
    }

    /// The checkpoint at `path`, with the validation loss it scored where known (the best
    /// model's).
    fn write(
        &self,
        path: &Path,
        lm: &mut CharLm,
        optimizer: &LmOptimizer,
        step: usize,
        state: &Option<LmState>,
        val_loss: Option<f32>,
    ) -> Result<()> {
        let adam = optimizer.snapshot(lm)?;
        let mut options = self.options.clone();
        if let Some(loss) = val_loss {
            options.insert(VAL_LOSS_KEY.into(), loss.to_string());
        }
        let ck = Checkpoint {
            spec: self.spec.clone(),
            lm: lm.clone(),
            adam,
            step,
            state: state.clone(),
            options,
        };
        ck.save(path)
    }
}

/// The best model by validation loss stays beside the latest checkpoint, so that a run that
/// diverges never loses it. A loss past twice an untrained model's (ln V) is a divergence: an
/// error that says where the best model is. Otherwise `write_best` replaces `BEST_FILE` where
/// this run's loss beats the one it records; returns the best model and its loss.
fn keep_best(
    checkpoint: Option<&Path>,
    val_loss: f32,
    vocab: usize,
    step: usize,
    write_best: impl FnOnce(&Path) -> Result<()>,
) -> Result<Option<(PathBuf, f32)>> {
    let untrained = (vocab as f32).ln();
    let best = checkpoint.map(|path| path.with_file_name(BEST_FILE));
    let previous = best.as_deref().and_then(best_val_loss);
    if val_loss > untrained + untrained.max(1.0) {
        let kept = match (&best, previous) {
            (Some(best), Some(loss)) => format!(
                "{} keeps the best model so far (validation loss {loss:.4})",
                best.display()
            ),
            (Some(_), None) => "no earlier model was kept".into(),
            (None, _) => "no checkpoint was written".into(),
        };
        return Err(RnnError::DivergedFinite {
            step,
            loss: val_loss,
            untrained,
            kept,
        });
    }
    let Some(best) = best else {
        return Ok(None);
    };
    Ok(Some(match previous {
        Some(loss) if loss <= val_loss => (best, loss),
        _ => {
            write_best(&best)?;
            (best, val_loss)
        }
    }))
}

/// The validation loss `best` records, where it is a readable checkpoint that records one.
fn best_val_loss(best: &Path) -> Option<f32> {
    let file = crate::tensor_file::TensorFile::read(best).ok()?;
    file.meta(VAL_LOSS_KEY)
        .ok()?
        .parse()
        .ok()
        .filter(|v: &f32| v.is_finite())
}

/// What a training run keeps back for its validation pass: the pass's estimated time (a
/// window group's forward at `FORWARD_SHARE` of a training step), at most
/// `MAX_VALIDATION_SHARE` of the time limit; nothing without a limit.
fn validation_reserve(mean_step: f64, groups: usize, seconds: Option<f64>) -> f64 {
    // A forward is about 0.4 of a forward + BPTT + optimizer step (`rnn-wgpu bench`); a little
    // more for the head and the loss.
    const FORWARD_SHARE: f64 = 0.5;
    const MAX_VALIDATION_SHARE: f64 = 0.25;
    seconds.map_or(0.0, |s| {
        (mean_step * FORWARD_SHARE * groups as f64).min(s * MAX_VALIDATION_SHARE)
    })
}

/// A validation pass: its mean loss over the windows it scored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Validation {
    /// Mean cross-entropy per character (nats).
    pub loss: f32,
    /// Windows scored.
    pub windows: usize,
    /// Windows in the text.
    pub of: usize,
}

/// Mean cross-entropy per character (nats) over consecutive windows of `seq` characters, each
/// from a zero state, evaluated up to `batch` windows at a time; `progress(done, total)` after
/// each group of windows. Group g holds windows g, g + G, g + 2G, ... of the G groups, so the
/// groups scored before `deadline` (at least one) are an even sample of the whole text.
pub fn validation_loss(
    lm: &CharLm,
    ids: &[usize],
    seq: usize,
    batch: usize,
    deadline: Option<Instant>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Validation> {
    let windows = validation_windows(ids, seq);
    let groups = windows.len().div_ceil(batch.max(1));
    let (mut total, mut count) = (0.0f64, 0usize);
    let mut done = 0;
    for g in 0..groups {
        if g > 0 && deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let group: Vec<&[usize]> = windows[g..].iter().step_by(groups).copied().collect();
        let inputs = Array2::from_shape_fn((seq, group.len()), |(t, b)| group[b][t]);
        let targets: Vec<usize> = (0..seq)
            .flat_map(|t| group.iter().map(move |w| w[t + 1]))
            .collect();
        let (logits, _) = lm.logits(inputs.view(), None)?;
        let flat = logits
            .into_shape_with_order((seq * group.len(), lm.vocab()))
            .expect("contiguous");
        let (loss, _) = cross_entropy(flat.view(), &targets)?;
        total += loss as f64 * targets.len() as f64;
        count += targets.len();
        done += group.len();
        progress(done, windows.len());
    }
    Ok(Validation {
        loss: if count == 0 {
            f32::NAN
        } else {
            (total / count as f64) as f32
        },
        windows: done,
        of: windows.len(),
    })
}
