//! Streaming equals the full-sequence forward step for step, on the CPU and the GPU, and a
//! restarted stream equals a fresh run while the others carry on.

mod common;

use ndarray::{Array2, Array3, Axis, s};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rnn_wgpu::{Backend, Mode, Rnn, RnnConfig};

fn close(what: &str, got: &Array2<f32>, want: &Array2<f32>) {
    let err = got
        .iter()
        .zip(want.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(err <= 2e-5, "{what}: max difference {err:e}");
}

fn check(backend: Backend) {
    for (i, mode) in Mode::ALL.into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(i as u64);
        let (seq, batch) = (6, 3);
        let x = Array3::from_shape_simple_fn((seq, batch, 4), || rng.random_range(-1.0f32..1.0));
        let cpu = Rnn::<f32>::new(RnnConfig::new(mode, 4, 7).layers(2), i as u64).unwrap();
        let model = cpu.clone().with_backend(backend).unwrap();
        let full = cpu.forward(x.view(), None, None).unwrap();
        let mut stream = model.stream(batch).unwrap();
        for t in 0..seq {
            let y = stream.step(x.index_axis(Axis(0), t)).unwrap();
            close(
                &format!("{mode} {backend} step {t}"),
                &y,
                &full.output.index_axis(Axis(0), t).to_owned(),
            );
        }
        let (h, c) = stream.state().unwrap();
        let h_err = h
            .iter()
            .zip(full.h_n.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(h_err <= 2e-5, "{mode} {backend} final h: {h_err:e}");
        assert_eq!(c.is_some(), mode == Mode::Lstm);

        // Restart stream 1 after step 3: its later outputs are a fresh run of x[3.., 1]; the
        // other streams keep their state.
        let mut stream = model.stream(batch).unwrap();
        for t in 0..3 {
            stream.step(x.index_axis(Axis(0), t)).unwrap();
        }
        stream.reset(&[1]).unwrap();
        let fresh = cpu.forward(x.slice(s![3.., 1..2, ..]), None, None).unwrap();
        for t in 3..seq {
            let y = stream.step(x.index_axis(Axis(0), t)).unwrap();
            close(
                &format!("{mode} {backend} restarted stream, step {t}"),
                &y.slice(s![1..2, ..]).to_owned(),
                &fresh.output.index_axis(Axis(0), t - 3).to_owned(),
            );
            close(
                &format!("{mode} {backend} carried stream, step {t}"),
                &y.slice(s![0..1, ..]).to_owned(),
                &full.output.slice(s![t, 0..1, ..]).to_owned(),
            );
        }
    }
}

/// A batch_first model streams (B, I) steps too, equal to its (B, T, I) forward.
fn check_batch_first(backend: Backend) {
    for (i, mode) in Mode::ALL.into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(10 + i as u64);
        let (batch, seq) = (3, 5);
        let x = Array3::from_shape_simple_fn((batch, seq, 4), || rng.random_range(-1.0f32..1.0));
        let config = RnnConfig::new(mode, 4, 20).layers(2).batch_first(true);
        let cpu = Rnn::<f32>::new(config, i as u64).unwrap();
        let full = cpu.forward(x.view(), None, None).unwrap();
        let model = cpu.with_backend(backend).unwrap();
        let mut stream = model.stream(batch).unwrap();
        for t in 0..seq {
            let y = stream.step(x.index_axis(Axis(1), t)).unwrap();
            close(
                &format!("batch_first {mode} {backend} step {t}"),
                &y,
                &full.output.index_axis(Axis(1), t).to_owned(),
            );
        }
    }
}

#[test]
fn cpu_stream_of_a_batch_first_model_equals_its_forward() {
    check_batch_first(Backend::Cpu);
}

#[test]
fn gpu_stream_of_a_batch_first_model_equals_its_forward() {
    if common::gpu().is_none() {
        return;
    }
    check_batch_first(Backend::Gpu);
}

#[test]
fn cpu_stream_equals_the_full_forward() {
    check(Backend::Cpu);
}

#[test]
fn gpu_stream_equals_the_full_forward_one_submission_per_step() {
    let Some(ctx) = common::gpu() else { return };
    check(Backend::Gpu);
    let model = Rnn::<f32>::new(RnnConfig::new(Mode::Gru, 2, 5), 0)
        .unwrap()
        .with_gpu(ctx)
        .unwrap();
    let gpu = model.gpu_model().unwrap().unwrap();
    let mut stream = model.stream(2).unwrap();
    let x = Array2::<f32>::ones((2, 2));
    stream.step(x.view()).unwrap();
    let before = gpu.stats().submissions;
    stream.step(x.view()).unwrap();
    assert_eq!(gpu.stats().submissions, before + 1);
}

#[test]
fn bad_streams_are_refused() {
    let bidir = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, 2, 3).bidirectional(true), 0).unwrap();
    assert!(
        bidir
            .stream(1)
            .err()
            .unwrap()
            .to_string()
            .contains("bidirectional model cannot stream")
    );
    let model = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, 2, 3), 0).unwrap();
    let mut stream = model.stream(2).unwrap();
    let err = stream
        .step(Array2::<f32>::zeros((3, 2)).view())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stream input: expected shape (2, 2), got [3, 2]"
    );
    assert!(stream.reset(&[2]).is_err());
}

/// `stream_from(h0, c0)` equals the forward from the same states, step for step, on both
/// backends; bad states are refused as a forward refuses them.
#[test]
fn a_stream_from_given_states_equals_the_forward_from_them() {
    let backends: Vec<Backend> = std::iter::once(Backend::Cpu)
        .chain(common::gpu().map(|_| Backend::Gpu))
        .collect();
    for backend in backends {
        for (i, mode) in Mode::ALL.into_iter().enumerate() {
            let mut rng = StdRng::seed_from_u64(40 + i as u64);
            let (seq, batch) = (4, 3);
            let mut random =
                |dims| Array3::from_shape_simple_fn(dims, || rng.random_range(-1.0f32..1.0));
            let x = random((seq, batch, 4));
            let h0 = random((2, batch, 5));
            let c0 = (mode == Mode::Lstm).then(|| random((2, batch, 5)));
            let cpu = Rnn::<f32>::new(RnnConfig::new(mode, 4, 5).layers(2), 3).unwrap();
            let full = cpu
                .forward(x.view(), Some(h0.view()), c0.as_ref().map(|c| c.view()))
                .unwrap();
            let model = cpu.with_backend(backend).unwrap();
            let mut stream = model
                .stream_from(h0.view(), c0.as_ref().map(|c| c.view()))
                .unwrap();
            for t in 0..seq {
                let y = stream.step(x.index_axis(Axis(0), t)).unwrap();
                let want = full.output.index_axis(Axis(0), t).to_owned();
                close(
                    &format!("{mode} {backend} from a state, step {t}"),
                    &y,
                    &want,
                );
            }
            let wrong = Array3::<f32>::zeros((1, batch, 5));
            assert!(model.stream_from(wrong.view(), None).is_err());
        }
    }
}
