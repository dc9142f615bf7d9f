//! Optimizer steps on the device (`Rnn::backward_on_device` + `adam_step_on_device` /
//! `sgd_step_on_device`) against the host's `optim::Adam` and `optim::Sgd` (which the parity
//! cases check against PyTorch): AdamW with weight decay, SGD with momentum, each with a clip
//! factor below 1, several steps, gradient norms and parameters; and what the host copy may and
//! may not do while the device holds newer parameters.

mod common;

use ndarray::Array3;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rnn_wgpu::optim::{Adam, Optimizer, Sgd, clip_and_step};
use rnn_wgpu::{Backend, Mode, OutputGrads, Rnn, RnnConfig, SyncState};

fn random3(rng: &mut StdRng, dims: (usize, usize, usize)) -> Array3<f32> {
    Array3::from_shape_simple_fn(dims, || rng.random_range(-1.0f32..1.0))
}

/// One batch through both copies: on the host forward, BPTT and a clipped `optimizer` step; on
/// the device forward and BPTT with the gradients left there. Asserts that the two gradient
/// norms agree and that the clip bites; returns the clip factor for the device's own step.
fn host_step_and_device_grads(
    cpu: &mut Rnn<f32>,
    gpu: &Rnn<f32>,
    optimizer: &mut impl Optimizer,
    x: &Array3<f32>,
    grad_output: &Array3<f32>,
    clip: f32,
) -> f32 {
    let upstream = OutputGrads {
        output: Some(grad_output.view()),
        ..Default::default()
    };
    let (_, tape) = cpu.forward_train(x.view(), None, None).unwrap();
    let mut grads = cpu.backward(tape, upstream, false).unwrap().params;
    let host_norm = clip_and_step(
        optimizer,
        cpu.params_mut().slices_mut(),
        grads.slices_mut(),
        Some(clip),
    )
    .unwrap();
    let (_, tape) = gpu.forward_train(x.view(), None, None).unwrap();
    let sums = gpu.backward_on_device(tape, upstream).unwrap();
    let norm = sums.iter().map(|&s| s as f64).sum::<f64>().sqrt() as f32;
    assert!(
        (norm - host_norm).abs() <= 1e-4 * host_norm,
        "device norm {norm}, host {host_norm}"
    );
    let factor = clip / (norm + 1e-6);
    assert!(factor < 1.0, "the clip must bite (norm {norm})");
    factor
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
}

/// The device's parameters, read back, against the host's.
fn assert_same_params(gpu: &mut Rnn<f32>, cpu: &Rnn<f32>) {
    gpu.sync_params().unwrap();
    let (mut g, mut c) = (gpu.params().clone(), cpu.params().clone());
    for (k, (g, c)) in g.slices_mut().iter().zip(c.slices_mut()).enumerate() {
        let err = max_abs_diff(g, c);
        assert!(
            err < 1e-4,
            "parameter tensor {k} differs by {err:e} after 4 steps"
        );
    }
}

#[test]
fn device_adamw_steps_equal_the_host_ones() {
    let Some(ctx) = common::gpu() else { return };
    let config = RnnConfig::new(Mode::Gru, 5, 8)
        .layers(2)
        .bidirectional(true);
    let mut cpu = Rnn::<f32>::new(config, 2).unwrap();
    let mut gpu = cpu.clone().with_gpu(ctx).unwrap();
    let mut rng = StdRng::seed_from_u64(6);
    let mut adam = Adam::adamw(1e-2, 0.1);
    // The device's steps take only hyperparameters: this one's step count stays 0, and the
    // device's bias correction must still follow steps 1, 2, 3, 4 as the host's does.
    let hyper = Adam::adamw(1e-2, 0.1);
    let clip = 0.5; // below every step's norm here, so the clip factor is exercised
    for _ in 0..4 {
        let x = random3(&mut rng, (6, 3, 5));
        let gy = random3(&mut rng, (6, 3, 16));
        let factor = host_step_and_device_grads(&mut cpu, &gpu, &mut adam, &x, &gy, clip);
        gpu.adam_step_on_device(&hyper, factor).unwrap();
    }
    assert_eq!(hyper.step, 0);
    let moments = gpu.device_moments().unwrap().expect("stepped there");
    assert_eq!(moments.adam_steps, 4);
    for (k, (device, host)) in moments.m.iter().zip(&adam.m).enumerate() {
        let err = max_abs_diff(device, host);
        assert!(err < 1e-4, "first moment {k} differs by {err:e}");
    }
    // The device's forward uses the stepped parameters (and W_hh's transposed copy).
    let x = random3(&mut rng, (4, 2, 5));
    let on_gpu = gpu.forward(x.view(), None, None).unwrap().output;
    let on_cpu = cpu.forward(x.view(), None, None).unwrap().output;
    let err = (&on_gpu - &on_cpu)
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(err < 1e-3, "forward after the steps differs by {err:e}");
    assert_same_params(&mut gpu, &cpu);
}

/// SGD with momentum on the device, clipped, against the host's over several steps: the
/// momentum buffers start at zero there and at the first gradient on the host, which must agree.
#[test]
fn device_sgd_momentum_steps_equal_the_host_ones() {
    let Some(ctx) = common::gpu() else { return };
    let config = RnnConfig::new(Mode::Lstm, 4, 6).layers(2);
    let mut cpu = Rnn::<f32>::new(config, 3).unwrap();
    let mut gpu = cpu.clone().with_gpu(ctx).unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let mut sgd = Sgd::new(0.1, 0.9);
    let clip = 0.3;
    for _ in 0..4 {
        let x = random3(&mut rng, (5, 3, 4));
        let gy = random3(&mut rng, (5, 3, 6));
        let factor = host_step_and_device_grads(&mut cpu, &gpu, &mut sgd, &x, &gy, clip);
        gpu.sgd_step_on_device(&sgd, factor).unwrap();
    }
    assert_same_params(&mut gpu, &cpu);
    // The momentum buffers themselves, read back, equal the host's.
    let m = gpu
        .device_moments()
        .unwrap()
        .expect("stepped on the device")
        .m;
    for (k, (device, host)) in m.iter().zip(&sgd.buffers).enumerate() {
        let err = max_abs_diff(device, host);
        assert!(err < 1e-4, "momentum buffer {k} differs by {err:e}");
    }
}

#[test]
fn a_model_with_newer_parameters_on_the_device_refuses_to_be_rebuilt_from_the_host() {
    let Some(ctx) = common::gpu() else { return };
    let mut gpu = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, 3, 4), 0)
        .unwrap()
        .with_gpu(ctx)
        .unwrap();
    let x = Array3::<f32>::ones((2, 1, 3));
    let (_, tape) = gpu.forward_train(x.view(), None, None).unwrap();
    gpu.backward_on_device(tape, OutputGrads::default())
        .unwrap();
    assert_eq!(gpu.sync_state(), Some(SyncState::Current));
    gpu.adam_step_on_device(&Adam::new(1e-2), 1.0).unwrap();
    assert_eq!(gpu.sync_state(), Some(SyncState::DeviceChanged));
    let err = gpu.clone().with_backend(Backend::Cpu).unwrap_err();
    assert!(err.to_string().contains("sync_params"), "{err}");
    // Changing the host copy now leaves two newer copies: the device one refuses to run.
    let mut both = gpu.clone();
    let _ = gpu.params_mut();
    assert_eq!(gpu.sync_state(), Some(SyncState::BothChanged));
    let err = gpu.forward(x.view(), None, None).unwrap_err();
    assert!(err.to_string().contains("sync_params"), "{err}");
    gpu.sync_params().unwrap();
    assert_eq!(gpu.sync_state(), Some(SyncState::Current));
    // A clone made while the device was ahead cannot build a device copy of its own.
    assert!(both.forward(x.view(), None, None).is_err());
    assert!(both.sync_params().is_err());
    assert!(gpu.with_backend(Backend::Cpu).is_ok());
    // And on the CPU backend there is no device to step on.
    let cpu = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, 3, 4), 0).unwrap();
    let (_, tape) = cpu.forward_train(x.view(), None, None).unwrap();
    let err = cpu
        .backward_on_device(tape, OutputGrads::default())
        .unwrap_err();
    assert!(err.to_string().contains("CPU backend"), "{err}");
}
