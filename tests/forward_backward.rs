//! One checked path for every forward: `forward_backward_batch` (one GPU submission for the
//! forward and BPTT) with dense rows, token ids, lengths, and token ids with lengths, against
//! `forward_train_batch` + `backward`, on the CPU and on the GPU; the GPU against the CPU.

mod common;

use ndarray::{Array2, Array3};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rnn_wgpu::{Mode, OutputGrads, Rnn, RnnBatch, RnnConfig, RnnGrads, RnnOutput};

const VOCAB: usize = 7;
const HIDDEN: usize = 5;
const LENGTHS: [usize; 3] = [6, 2, 4];

struct Case {
    name: &'static str,
    tokens: bool,
    lengths: bool,
}

const CASES: [Case; 4] = [
    Case {
        name: "dense",
        tokens: false,
        lengths: false,
    },
    Case {
        name: "token ids",
        tokens: true,
        lengths: false,
    },
    Case {
        name: "dense with lengths",
        tokens: false,
        lengths: true,
    },
    Case {
        name: "token ids with lengths",
        tokens: true,
        lengths: true,
    },
];

/// Inputs of one batch (T = 6, B = 3): dense rows, token ids, h0, c0 and upstream gradients.
struct Batch {
    x: Array3<f32>,
    ids: Array2<usize>,
    h0: Array3<f32>,
    c0: Array3<f32>,
    grad_output: Array3<f32>,
    grad_h_n: Array3<f32>,
}

fn batch(config: &RnnConfig) -> Batch {
    let mut rng = StdRng::seed_from_u64(41);
    let mut random = |dims| Array3::from_shape_simple_fn(dims, || rng.random_range(-1.0f32..1.0));
    let states = (config.num_layers * config.directions(), 3, HIDDEN);
    Batch {
        x: random((6, 3, VOCAB)),
        h0: random(states),
        c0: random(states),
        grad_output: random((6, 3, config.output_size())),
        grad_h_n: random(states),
        ids: Array2::from_shape_fn((6, 3), |(t, b)| (t * 5 + b * 3 + 1) % VOCAB),
    }
}

fn rnn_batch<'a>(data: &'a Batch, case: &Case, lstm: bool) -> RnnBatch<'a, f32> {
    let batch = if case.tokens {
        RnnBatch::tokens(data.ids.view())
    } else {
        RnnBatch::dense(data.x.view())
    };
    let batch = batch.states(Some(data.h0.view()), lstm.then(|| data.c0.view()));
    if case.lengths {
        batch.lengths(&LENGTHS)
    } else {
        batch
    }
}

fn upstream(data: &Batch) -> OutputGrads<'_, f32> {
    OutputGrads {
        output: Some(data.grad_output.view()),
        h_n: Some(data.grad_h_n.view()),
        c_n: None,
    }
}

/// Every number of an output and its gradients, flattened.
fn values(out: &RnnOutput<f32>, grads: &RnnGrads<f32>) -> Vec<f32> {
    let mut all: Vec<f32> = out.output.iter().chain(&out.h_n).copied().collect();
    all.extend(out.c_n.iter().flatten());
    all.extend(grads.input.iter().flatten());
    all.extend(grads.h0.iter().chain(grads.c0.iter().flatten()));
    all.extend(grads.params.slices().into_iter().flatten());
    all
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len(), "{what}: value counts");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * (1.0 + w.abs()),
            "{what}: value {k}: got {g}, want {w}"
        );
    }
}

/// forward_backward_batch against forward_train_batch + backward on one model, each case.
fn both_ways(model: &Rnn<f32>, lstm: bool) -> Vec<Vec<f32>> {
    let data = batch(model.config());
    CASES
        .iter()
        .map(|case| {
            let need_input_grad = !case.tokens;
            let fused = model
                .forward_backward_batch(
                    rnn_batch(&data, case, lstm),
                    upstream(&data),
                    need_input_grad,
                )
                .unwrap();
            let (out, tape) = model
                .forward_train_batch(rnn_batch(&data, case, lstm))
                .unwrap();
            let grads = model
                .backward(tape, upstream(&data), need_input_grad)
                .unwrap();
            let (fused, separate) = (values(&fused.0, &fused.1), values(&out, &grads));
            let what = format!("{} on {}: one call vs two", case.name, model.backend());
            assert_close(&what, &fused, &separate, 1e-6);
            fused
        })
        .collect()
}

fn config(mode: Mode) -> RnnConfig {
    RnnConfig::new(mode, VOCAB, HIDDEN)
        .layers(2)
        .bidirectional(true)
}

#[test]
fn forward_backward_equals_forward_train_then_backward_on_the_cpu() {
    for mode in [Mode::Lstm, Mode::Gru] {
        let model = Rnn::<f32>::new(config(mode), 3).unwrap();
        both_ways(&model, mode == Mode::Lstm);
    }
}

#[test]
fn forward_backward_equals_forward_train_then_backward_on_the_gpu_and_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    for mode in [Mode::Lstm, Mode::Gru] {
        let cpu = Rnn::<f32>::new(config(mode), 3).unwrap();
        let gpu = cpu.clone().with_gpu(ctx.clone()).unwrap();
        let lstm = mode == Mode::Lstm;
        let on_cpu = both_ways(&cpu, lstm);
        let on_gpu = both_ways(&gpu, lstm);
        for ((case, c), g) in CASES.iter().zip(&on_cpu).zip(&on_gpu) {
            assert_close(&format!("{mode:?} {}: GPU vs CPU", case.name), g, c, 1e-4);
        }
    }
}

#[test]
fn an_input_gradient_of_token_ids_is_refused_by_forward_backward() {
    let model = Rnn::<f32>::new(config(Mode::Gru), 3).unwrap();
    let data = batch(model.config());
    let case = &CASES[1];
    let err = model
        .forward_backward_batch(rnn_batch(&data, case, false), upstream(&data), true)
        .unwrap_err();
    assert!(err.to_string().contains("token ids"), "{err}");
}
