//! Training: the loss falls on a learnable text, a resumed run equals an uninterrupted one
//! bit for bit, mismatched checkpoints are refused, and the GPU path trains like the CPU path.

mod common;

use std::path::PathBuf;

use rnn_wgpu::checkpoint::{Checkpoint, LmSpec};
use rnn_wgpu::data::CharCorpus;
use rnn_wgpu::train::{Batching, TrainEvent, TrainOptions, train_char_lm};
use rnn_wgpu::{Backend, Mode};

/// A text with an obvious pattern, long enough for a 90/10 split and a few batches.
fn corpus() -> CharCorpus {
    CharCorpus::from_text(&"the cat sat on the mat. ".repeat(60)).unwrap()
}

fn options(corpus: &CharCorpus, steps: usize, checkpoint: Option<PathBuf>) -> TrainOptions {
    TrainOptions {
        spec: LmSpec {
            mode: Mode::Lstm,
            vocab: corpus.vocab.clone(),
            hidden: 24,
            layers: 2,
        },
        seq: 12,
        batch: 4,
        lr: 1e-2,
        clip: 1.0,
        dropout: 0.0,
        steps: Some(steps),
        seconds: None,
        backend: Backend::Cpu,
        batching: Batching::Sequential,
        seed: 7,
        checkpoint_every: 5,
        checkpoint,
        stop: None,
    }
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "rnn-wgpu-train-{}-{name}.safetensors",
        std::process::id()
    ))
}

#[test]
fn the_loss_falls_on_a_learnable_text() {
    let corpus = corpus();
    let baseline = (corpus.vocab.len() as f32).ln();
    let report = train_char_lm(&corpus, &options(&corpus, 150, None), None, |_| {}).unwrap();
    let first = report.losses[0].1;
    assert!(
        (first - baseline).abs() < 0.3,
        "step 0 loss {first} should be near ln(V) = {baseline}"
    );
    assert!(
        report.val_loss < 1.0,
        "validation loss {} after 150 steps on a repeating sentence",
        report.val_loss
    );
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one() {
    resumed_equals_uninterrupted(Batching::Sequential, Backend::Cpu);
}

#[test]
fn a_resumed_run_of_random_batches_equals_an_uninterrupted_one() {
    resumed_equals_uninterrupted(Batching::Random, Backend::Cpu);
}

/// On the GPU the stack's Adam moments live on the device: the checkpoint must read them back
/// and the resumed run put them there again.
#[test]
fn a_resumed_gpu_run_equals_an_uninterrupted_one() {
    if common::gpu().is_some() {
        resumed_equals_uninterrupted(Batching::Sequential, Backend::Gpu);
    }
}

fn resumed_equals_uninterrupted(batching: Batching, backend: Backend) {
    let corpus = corpus();
    let name = format!("{}-{backend:?}", batching.name());
    let (straight, split) = (
        temp(&format!("straight-{name}")),
        temp(&format!("split-{name}")),
    );
    // With dropout, so that the masks too must be drawn again as they were.
    let options = |steps: usize, checkpoint: Option<PathBuf>| TrainOptions {
        batching,
        backend,
        dropout: 0.2,
        ..options(&corpus, steps, checkpoint)
    };
    train_char_lm(&corpus, &options(12, Some(straight.clone())), None, |_| {}).unwrap();
    // A run killed during step 7: what it leaves is the periodic checkpoint of step 5, copied
    // aside while step 6 ran (the run's own final checkpoint is not used).
    let killed = temp(&format!("killed-{name}"));
    train_char_lm(&corpus, &options(7, Some(split.clone())), None, |event| {
        if let TrainEvent::Step(step) = event
            && step.step == 6
        {
            std::fs::copy(&split, &killed).unwrap();
        }
    })
    .unwrap();
    let resumed = Checkpoint::load(&killed).unwrap();
    assert_eq!(resumed.step, 5);
    std::fs::remove_file(&killed).unwrap();
    train_char_lm(
        &corpus,
        &options(12, Some(split.clone())),
        Some(resumed),
        |_| {},
    )
    .unwrap();
    let (a, b) = (
        Checkpoint::load(&straight).unwrap(),
        Checkpoint::load(&split).unwrap(),
    );
    assert_eq!(a.step, 12);
    assert_eq!(a.step, b.step);
    for ((name, x), (_, y)) in a.lm.named().iter().zip(b.lm.named()) {
        assert_eq!(x, &y, "{name} differs after resuming");
    }
    assert_eq!(a.adam.m, b.adam.m);
    assert_eq!(a.state, b.state);
    // The carried state: kept after sequential batches; after a random batch it is that
    // batch's end state, which the next random batch does not start from.
    assert!(a.state.is_some());
    std::fs::remove_file(straight).unwrap();
    std::fs::remove_file(split).unwrap();
}

#[test]
fn a_checkpoint_of_another_model_or_text_is_refused() {
    let corpus = corpus();
    let path = temp("refuse");
    train_char_lm(
        &corpus,
        &options(&corpus, 2, Some(path.clone())),
        None,
        |_| {},
    )
    .unwrap();
    // The error of resuming from that checkpoint with `options` on `text`.
    let refusal = |text: &CharCorpus, options: TrainOptions| -> String {
        train_char_lm(
            text,
            &options,
            Some(Checkpoint::load(&path).unwrap()),
            |_| {},
        )
        .err()
        .expect("refused")
        .to_string()
    };
    let mut bigger = options(&corpus, 4, None);
    bigger.spec.hidden = 32;
    let err = refusal(&corpus, bigger);
    assert!(
        err.contains("the checkpoint holds LSTM H=24 L=2, this run asks for LSTM H=32 L=2"),
        "{err}"
    );
    let other = CharCorpus::from_text(&"xyz ".repeat(200)).unwrap();
    let err = refusal(&other, options(&other, 4, None));
    assert!(err.contains("vocabulary"), "{err}");
    let mut longer = options(&corpus, 4, None);
    longer.seq = 13;
    let err = refusal(&corpus, longer);
    assert!(err.contains("seq=12, this run asks for seq=13"), "{err}");
    let random = TrainOptions {
        batching: Batching::Random,
        ..options(&corpus, 4, None)
    };
    let err = refusal(&corpus, random);
    assert!(
        err.contains("batching=sequential, this run asks for batching=random"),
        "{err}"
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_checkpoint_that_cannot_be_written_is_an_error_and_leaves_nothing() {
    let corpus = corpus();
    let dir = std::env::temp_dir().join(format!("rnn-wgpu-missing-dir-{}", std::process::id()));
    let err = train_char_lm(
        &corpus,
        &options(&corpus, 1, Some(dir.join("ck.safetensors"))),
        None,
        |_| {},
    )
    .err()
    .expect("no such directory");
    assert!(err.to_string().contains("cannot write"), "{err}");
    assert!(!dir.exists());
}

#[test]
fn the_gpu_trains_like_the_cpu() {
    if common::gpu().is_none() {
        return;
    }
    let corpus = corpus();
    let cpu = train_char_lm(&corpus, &options(&corpus, 6, None), None, |_| {}).unwrap();
    let mut gpu_opts = options(&corpus, 6, None);
    gpu_opts.backend = Backend::Gpu;
    let gpu = train_char_lm(&corpus, &gpu_opts, None, |_| {}).unwrap();
    for ((step, a), (_, b)) in cpu.losses.iter().zip(&gpu.losses) {
        assert!(
            (a - b).abs() < 1e-4 * a.abs().max(1.0),
            "step {step}: cpu loss {a}, gpu loss {b}"
        );
    }
    // The GPU stepped the stack on the device; the report's model holds those parameters.
    for ((name, a), (_, b)) in cpu.lm.named().iter().zip(gpu.lm.named()) {
        let err = (a - &b).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            err < 2e-3,
            "{name}: cpu and gpu parameters differ by {err:e}"
        );
    }
    assert!(
        (cpu.val_loss - gpu.val_loss).abs() < 1e-3,
        "{} vs {}",
        cpu.val_loss,
        gpu.val_loss
    );
}

#[test]
fn many_to_one_learns_the_sign_of_a_sum_through_two_layers() {
    use ndarray::Array3;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use rnn_wgpu::nn::{Linear, ManyToOne, cross_entropy};
    use rnn_wgpu::optim::Adam;
    use rnn_wgpu::{Rnn, RnnConfig};

    let mut rng = StdRng::seed_from_u64(3);
    let mut batch = |b: usize| {
        let x = Array3::from_shape_simple_fn((7, b, 1), || {
            if rng.random_range(0.0..1.0) < 0.5 {
                -1.0f32
            } else {
                1.0
            }
        });
        let labels: Vec<usize> = (0..b)
            .map(|i| usize::from(x.slice(ndarray::s![.., i, 0]).sum() > 0.0))
            .collect();
        (x, labels)
    };
    let rnn = Rnn::<f32>::new(RnnConfig::new(Mode::Gru, 1, 16).layers(2), 1).unwrap();
    let mut model = ManyToOne::new(rnn, Linear::new(16, 2, 2).unwrap()).unwrap();
    let mut adam = Adam::new(1e-2);
    for _ in 0..150 {
        let (x, labels) = batch(32);
        model
            .train_step(
                x.view(),
                |logits| cross_entropy(logits, &labels),
                &mut adam,
                Some(1.0),
            )
            .unwrap();
    }
    let (x, labels) = batch(500);
    let logits = model.predict(x.view()).unwrap();
    let correct = labels
        .iter()
        .enumerate()
        .filter(|&(i, &l)| usize::from(logits[[i, 1]] > logits[[i, 0]]) == l)
        .count();
    assert!(correct >= 475, "{correct}/500 correct");
}

/// The gradient train_step applies (read off one SGD step with lr = 1) against central finite
/// differences of the loss, for every weight of the first of two layers: they reach the loss only
/// through the last layer's final state.
#[test]
fn many_to_one_gradients_match_finite_differences() {
    use ndarray::Array3;
    use rnn_wgpu::nn::{Linear, ManyToOne, cross_entropy};
    use rnn_wgpu::optim::Sgd;
    use rnn_wgpu::{Rnn, RnnConfig};

    let x = Array3::from_shape_fn((3, 2, 2), |(t, b, i)| {
        ((t * 3 + b * 5 + i * 7) % 11) as f32 / 5.0 - 1.0
    });
    let labels = [1usize, 0];
    let rnn = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, 2, 3).layers(2), 4).unwrap();
    let model = ManyToOne::new(rnn, Linear::new(3, 2, 5).unwrap()).unwrap();
    let loss_of = |m: &ManyToOne| {
        cross_entropy(m.predict(x.view()).unwrap().view(), &labels)
            .unwrap()
            .0 as f64
    };

    let mut stepped = model.clone();
    stepped
        .train_step(
            x.view(),
            |logits| cross_entropy(logits, &labels),
            &mut Sgd::new(1.0, 0.0),
            None,
        )
        .unwrap();
    let before = model.rnn.params().cells[0].weight_ih.clone();
    let applied = &before - &stepped.rnn.params().cells[0].weight_ih;

    const EPS: f32 = 1e-2;
    for ((i, j), &g) in applied.indexed_iter() {
        let mut plus = model.clone();
        plus.rnn.params_mut().cells[0].weight_ih[[i, j]] += EPS;
        let mut minus = model.clone();
        minus.rnn.params_mut().cells[0].weight_ih[[i, j]] -= EPS;
        let numeric = (loss_of(&plus) - loss_of(&minus)) / (2.0 * EPS as f64);
        assert!(
            (g as f64 - numeric).abs() <= 2e-3 + 2e-2 * numeric.abs(),
            "weight_ih_l0[{i},{j}]: applied {g}, finite difference {numeric}"
        );
    }
}
