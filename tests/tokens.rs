//! Token-id input (`forward_tokens`): the same mathematics as the one-hot tensor it stands for
//! (one_hot(x) W_ih^T is the column of W_ih that x names), on the CPU gather path and on the GPU,
//! with the same gradients; bad ids and input-gradient requests refused.

mod common;

use ndarray::{Array2, Array3, ArrayView2};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rnn_wgpu::tokens::one_hot;
use rnn_wgpu::{Mode, OutputGrads, Rnn, RnnConfig, RnnError, RnnGrads};

const VOCAB: usize = 11;

fn random_tokens(rng: &mut StdRng, dims: (usize, usize)) -> Array2<usize> {
    Array2::from_shape_simple_fn(dims, || rng.random_range(0..VOCAB))
}

/// Gradients of sum(output * weights) through the token path and through the one-hot path.
fn grads_both_ways(
    model: &Rnn<f32>,
    tokens: ArrayView2<'_, usize>,
    weights: &Array3<f32>,
) -> (RnnGrads<f32>, RnnGrads<f32>) {
    let upstream = OutputGrads {
        output: Some(weights.view()),
        ..Default::default()
    };
    let (_, tape) = model.forward_train_tokens(tokens, None, None).unwrap();
    let via_tokens = model.backward(tape, upstream, false).unwrap();
    let x = one_hot::<f32>(tokens, VOCAB).unwrap();
    let (_, tape) = model.forward_train(x.view(), None, None).unwrap();
    let via_one_hot = model.backward(tape, upstream, false).unwrap();
    (via_tokens, via_one_hot)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn assert_grads_close(what: &str, got: &RnnGrads<f32>, want: &RnnGrads<f32>) {
    let (mut got_params, mut want_params) = (got.params.clone(), want.params.clone());
    for (g, w) in got_params.slices_mut().iter().zip(want_params.slices_mut()) {
        let scale = w.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let err = max_abs_diff(g, w);
        assert!(
            err <= 1e-5 * scale,
            "{what}: parameter gradient differs by {err:e}"
        );
    }
    let err = max_abs_diff(got.h0.as_slice().unwrap(), want.h0.as_slice().unwrap());
    assert!(err <= 1e-5, "{what}: h0 gradient differs by {err:e}");
}

#[test]
fn cpu_token_forward_equals_the_one_hot_forward_and_its_gradients() {
    let mut rng = StdRng::seed_from_u64(7);
    for (mode, layers, bidirectional) in [
        (Mode::Lstm, 2, false),
        (Mode::Gru, 1, true),
        (Mode::RnnTanh, 2, true),
    ] {
        let config = RnnConfig::new(mode, VOCAB, 9)
            .layers(layers)
            .bidirectional(bidirectional);
        let model = Rnn::<f32>::new(config.clone(), 3).unwrap();
        let tokens = random_tokens(&mut rng, (6, 4));
        let x = one_hot::<f32>(tokens.view(), VOCAB).unwrap();
        let via_tokens = model.forward_tokens(tokens.view(), None, None).unwrap();
        let via_one_hot = model.forward(x.view(), None, None).unwrap();
        // bias + W_ih[:, id] is what the product with one 1 and zeros elsewhere computes: exact.
        assert_eq!(via_tokens, via_one_hot, "{mode:?} forward");

        let out_dims = via_one_hot.output.dim();
        let weights = Array3::from_shape_simple_fn(out_dims, || rng.random_range(-1.0f32..1.0));
        let (got, want) = grads_both_ways(&model, tokens.view(), &weights);
        assert_grads_close(&format!("{mode:?}"), &got, &want);
        assert!(got.input.is_none());
    }
}

#[test]
fn batch_first_tokens_are_read_batch_first() {
    let config = RnnConfig::new(Mode::Gru, VOCAB, 5).batch_first(true);
    let model = Rnn::<f32>::new(config, 1).unwrap();
    let tokens = random_tokens(&mut StdRng::seed_from_u64(2), (3, 7)); // (B, T)
    let x = one_hot::<f32>(tokens.view(), VOCAB).unwrap(); // (B, T, V)
    let via_tokens = model.forward_tokens(tokens.view(), None, None).unwrap();
    let via_one_hot = model.forward(x.view(), None, None).unwrap();
    assert_eq!(via_tokens.output.dim(), (3, 7, 5));
    assert_eq!(via_tokens, via_one_hot);
}

#[test]
fn gpu_token_forward_and_gradients_equal_the_cpu_ones() {
    let Some(ctx) = common::gpu() else { return };
    let config = RnnConfig::new(Mode::Lstm, VOCAB, 12).layers(2);
    let cpu = Rnn::<f32>::new(config, 5).unwrap();
    let gpu = cpu.clone().with_gpu(ctx).unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let tokens = random_tokens(&mut rng, (5, 3));
    let on_cpu = cpu.forward_tokens(tokens.view(), None, None).unwrap();
    let on_gpu = gpu.forward_tokens(tokens.view(), None, None).unwrap();
    let err = max_abs_diff(
        on_gpu.output.as_slice().unwrap(),
        on_cpu.output.as_slice().unwrap(),
    );
    assert!(err <= 2e-4, "output differs by {err:e}");
    let weights =
        Array3::from_shape_simple_fn(on_cpu.output.dim(), || rng.random_range(-1.0f32..1.0));
    let (gpu_grads, _) = grads_both_ways(&gpu, tokens.view(), &weights);
    let (cpu_grads, _) = grads_both_ways(&cpu, tokens.view(), &weights);
    let (mut g, mut c) = (gpu_grads.params, cpu_grads.params);
    for (g, c) in g.slices_mut().iter().zip(c.slices_mut()) {
        let err = max_abs_diff(g, c);
        assert!(err <= 2e-4, "parameter gradient differs by {err:e}");
    }
}

#[test]
fn bad_token_ids_and_input_gradients_are_refused() {
    let model = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, VOCAB, 4), 0).unwrap();
    let mut tokens = Array2::<usize>::zeros((3, 2));
    tokens[[2, 1]] = VOCAB;
    let err = model
        .forward_tokens(tokens.view(), None, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("token 11 at (2, 1)") && err.contains("vocabulary of 11"),
        "{err}"
    );
    tokens[[2, 1]] = 0;
    let (_, tape) = model
        .forward_train_tokens(tokens.view(), None, None)
        .unwrap();
    let err = model
        .backward(tape, OutputGrads::default(), true)
        .unwrap_err();
    assert!(
        matches!(err, RnnError::Config(ref m) if m.contains("token ids")),
        "{err}"
    );
    let empty = Array2::<usize>::zeros((0, 2));
    assert!(matches!(
        model.forward_tokens(empty.view(), None, None),
        Err(RnnError::ZeroSize { .. })
    ));
}
