//! The GPU engine against the CPU reference on random shapes (odd sizes, T=1, B=1, H not a
//! multiple of the workgroup size, H=1024, 3 layers, bidirectional), plus the scheduling promises:
//! one submission per forward+BPTT and the designed number of dispatches per time step.

mod common;

use ndarray::Array3;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::sync::Arc;

use rnn_wgpu::gpu::{ForwardVariant, GpuContext, MAX_PERSISTENT_HIDDEN};
use rnn_wgpu::{Backend, Mode, OutputGrads, Rnn, RnnConfig, RnnError};

fn random3(rng: &mut StdRng, dims: (usize, usize, usize)) -> Array3<f32> {
    Array3::from_shape_simple_fn(dims, || rng.random_range(-1.0f32..1.0))
}

/// max |a - b| <= 2e-4 * max(1, max |b|), the parity tolerance, with the worst entry on failure.
fn assert_close(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let scale = cpu.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let (index, err) = gpu
        .iter()
        .zip(cpu)
        .map(|(g, c)| (g - c).abs())
        .enumerate()
        .fold((0, 0.0f32), |best, (i, e)| {
            if e > best.1 || e.is_nan() {
                (i, e)
            } else {
                best
            }
        });
    assert!(
        err <= 2e-4 * scale,
        "{what}: max |gpu - cpu| = {err:e} at {index} (gpu {}, cpu {}), tolerance {:e}",
        gpu[index],
        cpu[index],
        2e-4 * scale
    );
}

fn compare(config: RnnConfig, seq: usize, batch: usize, seed: u64) {
    let Some(ctx) = common::gpu() else { return };
    compare_on(ctx, config, seq, batch, seed);
}

/// `compare` on the device of `ctx`.
fn compare_on(ctx: Arc<GpuContext>, config: RnnConfig, seq: usize, batch: usize, seed: u64) {
    let label = format!(
        "{:?} I={} H={} L={} D={} T={seq} B={batch}",
        config.mode,
        config.input_size,
        config.hidden_size,
        config.num_layers,
        config.directions()
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let cpu = Rnn::<f32>::new(config.clone(), seed).expect("valid");
    let gpu = cpu.clone().with_gpu(ctx).expect("fits the device");
    let states = (
        config.num_layers * config.directions(),
        batch,
        config.hidden_size,
    );
    let x_dims = if config.batch_first {
        (batch, seq, config.input_size)
    } else {
        (seq, batch, config.input_size)
    };
    let x = random3(&mut rng, x_dims);
    let h0 = random3(&mut rng, states);
    let c0 = (config.mode == Mode::Lstm).then(|| random3(&mut rng, states));
    let gy = random3(&mut rng, (x_dims.0, x_dims.1, config.output_size()));
    let ghn = random3(&mut rng, states);
    let gcn = (config.mode == Mode::Lstm).then(|| random3(&mut rng, states));
    let upstream = OutputGrads {
        output: Some(gy.view()),
        h_n: Some(ghn.view()),
        c_n: gcn.as_ref().map(|g| g.view()),
    };
    let run = |m: &Rnn<f32>| {
        m.forward_backward(
            x.view(),
            Some(h0.view()),
            c0.as_ref().map(|c| c.view()),
            upstream,
            true,
        )
        .expect("runs")
    };
    let (want_out, want_grads) = run(&cpu);
    // Both forward kernels: one dispatch per step, and the persistent one where H allows.
    let gpu_model = gpu.gpu_model().unwrap().expect("on the GPU");
    let mut variants = vec![ForwardVariant::PerStep];
    if config.hidden_size <= MAX_PERSISTENT_HIDDEN {
        variants.push(ForwardVariant::Persistent);
    }
    for variant in variants {
        gpu_model.set_forward_variant(Some(variant));
        let label = format!("{label} {variant:?}");
        let (got_out, got_grads) = run(&gpu);
        assert_eq!(gpu_model.stats().forward_variant, Some(variant));
        compare_results(
            &label,
            &config,
            (&got_out, &got_grads),
            (&want_out, &want_grads),
        );
    }
}

fn compare_results(
    label: &str,
    config: &RnnConfig,
    (got_out, got_grads): (&rnn_wgpu::RnnOutput<f32>, &rnn_wgpu::RnnGrads<f32>),
    (want_out, want_grads): (&rnn_wgpu::RnnOutput<f32>, &rnn_wgpu::RnnGrads<f32>),
) {
    let s = |a: &Array3<f32>| a.as_slice().expect("standard layout").to_vec();
    assert_close(
        &format!("{label} output"),
        &s(&got_out.output),
        &s(&want_out.output),
    );
    assert_close(&format!("{label} h_n"), &s(&got_out.h_n), &s(&want_out.h_n));
    if let (Some(g), Some(w)) = (&got_out.c_n, &want_out.c_n) {
        assert_close(&format!("{label} c_n"), &s(g), &s(w));
    }
    assert_close(
        &format!("{label} grad input"),
        &s(got_grads.input.as_ref().unwrap()),
        &s(want_grads.input.as_ref().unwrap()),
    );
    assert_close(
        &format!("{label} grad h0"),
        &s(&got_grads.h0),
        &s(&want_grads.h0),
    );
    if let (Some(g), Some(w)) = (&got_grads.c0, &want_grads.c0) {
        assert_close(&format!("{label} grad c0"), &s(g), &s(w));
    }
    for ((name, g), (_, w)) in got_grads
        .params
        .named(config)
        .iter()
        .zip(want_grads.params.named(config))
    {
        assert_close(
            &format!("{label} grad {name}"),
            g.as_slice().unwrap(),
            w.as_slice().unwrap(),
        );
    }
}

#[test]
fn odd_sizes_every_mode() {
    for (i, mode) in Mode::ALL.into_iter().enumerate() {
        compare(RnnConfig::new(mode, 5, 7), 4, 3, i as u64);
        compare(RnnConfig::new(mode, 13, 65).layers(2), 5, 2, 10 + i as u64);
    }
}

/// GRU's cell file declares 11 storage buffers; each of its entry points binds at most 8, the
/// most every WebGPU adapter has, so every mode runs, forward and BPTT, on a device held to
/// `wgpu::Limits::default()`.
#[test]
fn every_mode_runs_on_a_device_with_the_webgpu_default_limits() {
    if common::gpu().is_none() {
        return;
    }
    let ctx = GpuContext::with_limits(wgpu::Limits::default()).expect("the adapter meets them");
    assert_eq!(ctx.limits.max_storage_buffers_per_shader_stage, 8);
    for mode in [Mode::RnnTanh, Mode::RnnRelu, Mode::Lstm, Mode::Gru] {
        let config = RnnConfig::new(mode, 5, 9).layers(2).bidirectional(true);
        compare_on(ctx.clone(), config, 4, 3, 11);
    }
}

#[test]
fn three_layers_bidirectional() {
    for (i, mode) in Mode::ALL.into_iter().enumerate() {
        compare(
            RnnConfig::new(mode, 6, 33).layers(3).bidirectional(true),
            6,
            4,
            20 + i as u64,
        );
    }
}

#[test]
fn single_step_and_single_batch() {
    for (i, mode) in Mode::ALL.into_iter().enumerate() {
        compare(RnnConfig::new(mode, 3, 1), 1, 1, 30 + i as u64);
        compare(
            RnnConfig::new(mode, 4, 129).bidirectional(true),
            1,
            5,
            40 + i as u64,
        );
        compare(RnnConfig::new(mode, 8, 100).layers(2), 9, 1, 50 + i as u64);
    }
}

#[test]
fn hidden_1024_and_beyond_the_persistent_limit() {
    compare(RnnConfig::new(Mode::Lstm, 16, 1024), 3, 2, 60);
    compare(RnnConfig::new(Mode::Gru, 16, 1024), 2, 3, 61);
    compare(RnnConfig::new(Mode::RnnTanh, 8, 1100), 2, 2, 62);
}

#[test]
fn without_bias_and_batch_first() {
    for (i, mode) in Mode::ALL.into_iter().enumerate() {
        compare(
            RnnConfig::new(mode, 5, 9).bias(false).bidirectional(true),
            4,
            3,
            70 + i as u64,
        );
        compare(
            RnnConfig::new(mode, 5, 9).layers(2).batch_first(true),
            4,
            3,
            80 + i as u64,
        );
    }
}

#[test]
fn one_submission_and_the_designed_dispatches_per_step() {
    let Some(ctx) = common::gpu() else { return };
    let (layers, dirs, seq) = (2, 2, 7);
    let config = RnnConfig::new(Mode::Lstm, 5, 6)
        .layers(layers)
        .bidirectional(true);
    let model = Rnn::<f32>::new(config, 0).unwrap().with_gpu(ctx).unwrap();
    let x = Array3::<f32>::ones((seq, 3, 5));
    let gy = Array3::<f32>::ones((seq, 3, 12));
    let gpu = model.gpu_model().unwrap().expect("on the GPU");
    let before = gpu.stats().submissions;
    let upstream = OutputGrads {
        output: Some(gy.view()),
        ..Default::default()
    };
    model
        .forward_backward(x.view(), None, None, upstream, false)
        .unwrap();
    let stats = gpu.stats();
    assert_eq!(
        stats.submissions,
        before + 1,
        "forward + BPTT is one queue submission"
    );
    // Forward: per layer and direction, one input projection, then one fused dispatch per step,
    // or, with the persistent kernels, one dispatch for all steps.
    let recurrence = match stats.forward_variant.expect("a forward ran") {
        ForwardVariant::PerStep => seq,
        ForwardVariant::Persistent => 1,
    };
    assert_eq!(stats.last.forward, layers * dirs * (1 + recurrence));
    // Backward: two per step (gate gradients, then dh through W_hh), then dW_ih, dW_hh, db_ih,
    // db_hh per layer and direction, and dX for the layers whose input needs it (not layer 0).
    let input_grads = (layers - 1) * dirs;
    assert_eq!(
        stats.last.backward,
        layers * dirs * (2 * seq + 4) + input_grads
    );
}

#[test]
fn parameters_changed_on_the_host_reach_the_gpu() {
    let Some(ctx) = common::gpu() else { return };
    let config = RnnConfig::new(Mode::Gru, 3, 4);
    let mut model = Rnn::<f32>::new(config.clone(), 1)
        .unwrap()
        .with_gpu(ctx)
        .unwrap();
    let x = Array3::<f32>::ones((2, 1, 3));
    let before = model.forward(x.view(), None, None).unwrap().output;
    model.params_mut().cells[0].weight_ih.fill(0.5);
    let after = model.forward(x.view(), None, None).unwrap().output;
    let cpu = model
        .clone()
        .with_backend(Backend::Cpu)
        .unwrap()
        .forward(x.view(), None, None)
        .unwrap()
        .output;
    assert_ne!(before, after);
    assert_close(
        "after params_mut",
        after.as_slice().unwrap(),
        cpu.as_slice().unwrap(),
    );
}

#[test]
fn separate_forward_and_backward_calls_agree_and_an_older_tape_still_works() {
    let Some(ctx) = common::gpu() else { return };
    let config = RnnConfig::new(Mode::RnnTanh, 3, 5).layers(2);
    let gpu = Rnn::<f32>::new(config.clone(), 2)
        .unwrap()
        .with_gpu(ctx)
        .unwrap();
    let cpu = Rnn::<f32>::new(config, 2).unwrap();
    let x = Array3::<f32>::from_shape_fn((4, 2, 3), |(t, b, i)| (t + b + i) as f32 * 0.1);
    let gy = Array3::<f32>::ones((4, 2, 5));
    let upstream = OutputGrads {
        output: Some(gy.view()),
        ..Default::default()
    };
    let (_, tape) = gpu.forward_train(x.view(), None, None).unwrap();
    let got = gpu.backward(tape, upstream, true).unwrap();
    let (_, tape) = cpu.forward_train(x.view(), None, None).unwrap();
    let want = cpu.backward(tape, upstream, true).unwrap();
    let want_input = want.input.unwrap();
    assert_close(
        "grad input",
        got.input.unwrap().as_slice().unwrap(),
        want_input.as_slice().unwrap(),
    );

    // A newer forward of the same shape used to make this tape stale; it owns its buffers now.
    let (_, older) = gpu.forward_train(x.view(), None, None).unwrap();
    let _newer = gpu.forward_train((&x * 2.0).view(), None, None).unwrap();
    let got = gpu.backward(older, upstream, true).unwrap();
    assert_close(
        "grad input of the older tape",
        got.input.unwrap().as_slice().unwrap(),
        want_input.as_slice().unwrap(),
    );
}

#[test]
fn a_model_beyond_the_device_limits_is_an_error_naming_the_limit() {
    let Some(ctx) = common::gpu() else { return };
    let limit = ctx.limits.max_storage_buffer_binding_size;
    // An LSTM whose W_hh (4H x H floats) is larger than one storage binding may be.
    let hidden = (((limit / 16) as f64).sqrt() as usize + 64).max(64);
    let config = RnnConfig::new(Mode::Lstm, 1, hidden);
    let params = rnn_wgpu::RnnParams::<f32>::zeros(&config);
    let err = Rnn::from_params(config, params)
        .unwrap()
        .with_gpu(ctx)
        .unwrap_err();
    assert!(matches!(err, RnnError::DeviceLimit { .. }), "{err}");
    assert!(
        err.to_string().contains("max_storage_buffer_binding_size")
            || err.to_string().contains("max_buffer_size"),
        "{err}"
    );
}

/// Opens the test binary's GPU context: the child the two tests below run alone.
#[test]
fn opens_the_gpu_context() {
    if let Some(ctx) = common::gpu() {
        assert!(!ctx.info.name.is_empty());
    }
}

/// This test binary again, running only `opens_the_gpu_context`, with `env` changed.
fn run_child(env: &[(&str, Option<&str>)]) -> std::process::Output {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child.args(["--exact", "opens_the_gpu_context", "--test-threads", "1"]);
    for (key, value) in env {
        match value {
            Some(value) => child.env(key, value),
            None => child.env_remove(key),
        };
    }
    child.output().expect("the test binary runs")
}

#[test]
fn a_missing_adapter_is_reported_as_skipped_unless_required() {
    let no_adapter = ("RNN_WGPU_ADAPTER", Some("no-such-adapter-anywhere"));
    let out = run_child(&[no_adapter, ("RNN_WGPU_REQUIRE_GPU", None)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "skipped: no GPU adapter: opens_the_gpu_context (GPU: no adapter's name contains"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("gpu: 1 GPU test skipped: no GPU adapter"),
        "{stderr}"
    );

    let out = run_child(&[no_adapter, ("RNN_WGPU_REQUIRE_GPU", Some("1"))]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("RNN_WGPU_REQUIRE_GPU=1 but no GPU"),
        "{stdout}"
    );
}

#[test]
fn the_library_keeps_mesa_window_system_noise_out_of_stderr() {
    if common::gpu().is_none() {
        return;
    }
    let out = run_child(&[("XDG_RUNTIME_DIR", None)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
}

#[test]
fn models_moved_to_the_gpu_share_one_device() {
    if common::gpu().is_none() {
        return;
    }
    let config = RnnConfig::new(Mode::Gru, 3, 4);
    let a = Rnn::<f32>::new(config.clone(), 0).unwrap();
    let b = Rnn::<f32>::new(config, 1).unwrap();
    let a = a.with_backend(Backend::Gpu).unwrap();
    let b = b.with_backend(Backend::Gpu).unwrap();
    let back = a.clone().with_backend(Backend::Cpu).unwrap();
    let again = back.with_backend(Backend::Gpu).unwrap();
    let (a, b, again) = (a.gpu_context(), b.gpu_context(), again.gpu_context());
    assert!(std::sync::Arc::ptr_eq(a.unwrap(), b.unwrap()));
    assert!(std::sync::Arc::ptr_eq(a.unwrap(), again.unwrap()));
}

/// Gradients of `model` for `x` and upstream `gy` through `backward` of `tape`.
fn grads_of(model: &Rnn<f32>, tape: rnn_wgpu::Tape<f32>, gy: &Array3<f32>) -> Vec<f32> {
    let upstream = OutputGrads {
        output: Some(gy.view()),
        ..Default::default()
    };
    let grads = model.backward(tape, upstream, true).unwrap();
    let mut flat: Vec<f32> = grads.input.unwrap().iter().copied().collect();
    flat.extend(grads.h0.iter());
    for s in grads.params.slices() {
        flat.extend_from_slice(s);
    }
    flat
}

#[test]
fn tapes_live_side_by_side_as_on_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let mut rng = StdRng::seed_from_u64(40);
    let config = RnnConfig::new(Mode::Gru, 5, 9).layers(2);
    let cpu = Rnn::<f32>::new(config, 3).unwrap();
    let gpu = cpu.clone().with_gpu(ctx).unwrap();
    let (a, b) = (random3(&mut rng, (6, 3, 5)), random3(&mut rng, (6, 3, 5)));
    let (ga, gb) = (random3(&mut rng, (6, 3, 9)), random3(&mut rng, (6, 3, 9)));
    let other = random3(&mut rng, (4, 2, 5));
    // Two training forwards of the same shape, an inference forward of that shape and a
    // training forward of another shape in between, then the backwards in reverse order.
    let (_, tape_a) = gpu.forward_train(a.view(), None, None).unwrap();
    let (_, tape_b) = gpu.forward_train(b.view(), None, None).unwrap();
    gpu.forward(a.view(), None, None).unwrap();
    let (_, tape_other) = gpu.forward_train(other.view(), None, None).unwrap();
    let got_b = grads_of(&gpu, tape_b, &gb);
    let got_a = grads_of(&gpu, tape_a, &ga);
    drop(tape_other);
    let want = |x: &Array3<f32>, g: &Array3<f32>| {
        let (_, tape) = cpu.forward_train(x.view(), None, None).unwrap();
        grads_of(&cpu, tape, g)
    };
    assert_close("backward of the second tape", &got_b, &want(&b, &gb));
    assert_close("backward of the first tape", &got_a, &want(&a, &ga));
}

#[test]
fn many_shapes_keep_the_plan_cache_within_its_bound() {
    let Some(ctx) = common::gpu() else { return };
    let mut rng = StdRng::seed_from_u64(41);
    let config = RnnConfig::new(Mode::Lstm, 3, 4);
    let cpu = Rnn::<f32>::new(config, 1).unwrap();
    let gpu = cpu.clone().with_gpu(ctx).unwrap();
    let device = gpu.gpu_model().unwrap().unwrap();
    let x = random3(&mut rng, (3, 2, 3));
    let gy = random3(&mut rng, (3, 2, 4));
    // A tape held across all of them keeps its plan.
    let (_, held) = gpu.forward_train(x.view(), None, None).unwrap();
    for i in 0..200 {
        let (seq, batch) = (1 + i % 20, 1 + i / 20);
        gpu.forward(Array3::zeros((seq, batch, 3)).view(), None, None)
            .unwrap();
        let (plans, leased) = device.plan_counts();
        assert!(
            plans <= rnn_wgpu::gpu::DEFAULT_PLAN_BOUND + leased,
            "{plans} plans after {i}"
        );
        assert_eq!(leased, 1);
    }
    let got = grads_of(&gpu, held, &gy);
    let (_, tape) = cpu.forward_train(x.view(), None, None).unwrap();
    assert_close(
        "the held tape after 200 shapes",
        &got,
        &grads_of(&cpu, tape, &gy),
    );
    assert_eq!(device.plan_counts().1, 0);
    device.set_plan_bound(2);
    assert!(device.plan_counts().0 <= 2);
}

#[test]
fn a_stream_keeps_its_state_through_other_forwards_of_its_shape() {
    let Some(ctx) = common::gpu() else { return };
    let mut rng = StdRng::seed_from_u64(42);
    let cpu = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, 3, 5), 2).unwrap();
    let gpu = cpu.clone().with_gpu(ctx).unwrap();
    let x = random3(&mut rng, (4, 2, 3));
    let want = cpu.forward(x.view(), None, None).unwrap();
    let mut stream = gpu.stream(2).unwrap();
    for t in 0..4 {
        let y = stream.step(x.index_axis(ndarray::Axis(0), t)).unwrap();
        // A forward of the stream's own shape (1, B) between its steps.
        gpu.forward(random3(&mut rng, (1, 2, 3)).view(), None, None)
            .unwrap();
        let row: Vec<f32> = want
            .output
            .index_axis(ndarray::Axis(0), t)
            .iter()
            .copied()
            .collect();
        assert_close(
            &format!("stream step {t}"),
            &y.iter().copied().collect::<Vec<_>>(),
            &row,
        );
    }
}
