//! f16 weights on the GPU (inference): the f32 result within a relative tolerance, on every
//! mode through a bidirectional two-layer stack.
//!
//! The tolerance: f16 keeps 11 significant bits, so each weight moves by up to 2^-12 of itself
//! (2.4e-4); a pre-activation sums H such products with errors of random sign (they partly
//! cancel), and the states feed back for T steps through contractive gates. So the output's
//! relative error (Frobenius norm) should sit near 2.4e-4; 2e-3 leaves a factor 8 (lavapipe
//! measures 1.3e-4 to 3.2e-4). A difference of exactly zero fails too: it would mean the f16
//! kernels never ran.

mod common;

use ndarray::Array3;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rnn_wgpu::{Mode, Rnn, RnnConfig, RnnError};

const TOLERANCE: f64 = 2e-3;

fn relative_error(got: &Array3<f32>, want: &Array3<f32>) -> f64 {
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|&b| f64::from(b).powi(2)).sum();
    (diff / norm).sqrt()
}

#[test]
fn f16_weights_match_f32_within_tolerance() {
    let Some(ctx) = common::gpu() else { return };
    if !ctx.has_f16() {
        eprintln!("skipped: {} has no SHADER_F16", ctx.info.name);
        assert!(
            std::env::var("RNN_WGPU_REQUIRE_F16").is_err(),
            "RNN_WGPU_REQUIRE_F16 set"
        );
        return;
    }
    for mode in Mode::ALL {
        let config = RnnConfig::new(mode, 24, 48).layers(2).bidirectional(true);
        let cpu = Rnn::<f32>::new(config, mode as u64).unwrap();
        let half = cpu
            .clone()
            .with_gpu(ctx.clone())
            .unwrap()
            .with_f16()
            .unwrap();
        assert!(half.is_f16());
        let mut rng = StdRng::seed_from_u64(3);
        let x = Array3::from_shape_simple_fn((20, 5, 24), || rng.random_range(-1.0f32..1.0));
        let want = cpu.forward(x.view(), None, None).unwrap();
        let got = half.forward(x.view(), None, None).unwrap();
        let (out, h_n) = (
            relative_error(&got.output, &want.output),
            relative_error(&got.h_n, &want.h_n),
        );
        eprintln!("{mode}: relative error output {out:.2e}, h_n {h_n:.2e}");
        assert!(
            out > 0.0,
            "{mode}: f16 equal to f32 to the bit: the f16 kernels did not run"
        );
        assert!(
            out <= TOLERANCE && h_n <= TOLERANCE,
            "{mode}: {out:e} / {h_n:e}"
        );
        // Training a model with f16 weights is refused.
        match half.forward_train(x.view(), None, None) {
            Err(RnnError::Unsupported(what)) => assert!(what.contains("f16"), "{what}"),
            other => panic!("{mode}: training with f16 weights: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn f16_on_the_cpu_backend_is_an_error() {
    let cpu = Rnn::<f32>::new(RnnConfig::new(Mode::Gru, 3, 4), 0).unwrap();
    assert!(matches!(cpu.with_f16(), Err(RnnError::Unsupported(_))));
}
