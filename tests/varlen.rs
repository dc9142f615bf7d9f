//! Variable-length batches (PyTorch's packed sequences) equal running each sequence alone:
//! outputs (zero past each end), h_n / c_n, and every gradient, on the CPU and the GPU, through
//! two bidirectional layers. Each sequence alone is itself checked against PyTorch elsewhere.

mod common;

use ndarray::{Array3, ArrayView3, s};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rnn_wgpu::{Backend, Mode, OutputGrads, Rnn, RnnConfig, RnnError};

const LENGTHS: [usize; 4] = [5, 2, 7, 1];
const SEQ: usize = 7;

fn max_diff(a: ArrayView3<'_, f32>, b: ArrayView3<'_, f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn close(what: &str, got: ArrayView3<'_, f32>, want: ArrayView3<'_, f32>) {
    let err = max_diff(got, want);
    assert!(err <= 2e-5, "{what}: max difference {err:e}");
}

fn random(rng: &mut StdRng, dim: (usize, usize, usize)) -> Array3<f32> {
    Array3::from_shape_simple_fn(dim, || rng.random_range(-1.0f32..1.0))
}

fn check(mode: Mode, backend: Backend) {
    let config = RnnConfig::new(mode, 3, 5).layers(2).bidirectional(true);
    let cpu = Rnn::<f32>::new(config.clone(), 7).unwrap();
    let model = cpu.clone().with_backend(backend).unwrap();
    let mut rng = StdRng::seed_from_u64(mode as u64);
    let batch = LENGTHS.len();
    let states = 4; // L * D
    let x = random(&mut rng, (SEQ, batch, 3));
    let h0 = random(&mut rng, (states, batch, 5));
    let c0 = (mode == Mode::Lstm).then(|| random(&mut rng, (states, batch, 5)));
    let g_out = random(&mut rng, (SEQ, batch, 10));
    let g_h = random(&mut rng, (states, batch, 5));
    let g_c = (mode == Mode::Lstm).then(|| random(&mut rng, (states, batch, 5)));

    let (packed, tape) = model
        .forward_train_packed(
            x.view(),
            &LENGTHS,
            Some(h0.view()),
            c0.as_ref().map(|c| c.view()),
        )
        .unwrap();
    let grads = model
        .backward(
            tape,
            OutputGrads {
                output: Some(g_out.view()),
                h_n: Some(g_h.view()),
                c_n: g_c.as_ref().map(|c| c.view()),
            },
            true,
        )
        .unwrap();
    let inference = model
        .forward_packed(
            x.view(),
            &LENGTHS,
            Some(h0.view()),
            c0.as_ref().map(|c| c.view()),
        )
        .unwrap();
    assert_eq!(
        inference, packed,
        "{mode} {backend}: inference and training forward"
    );

    let mut param_sum = rnn_wgpu::RnnParams::<f32>::zeros(&config);
    for (b, &len) in LENGTHS.iter().enumerate() {
        let what = format!("{mode} {backend} row {b} (length {len})");
        let row = |a: &Array3<f32>| a.slice(s![.., b..b + 1, ..]).to_owned();
        let x_b = x.slice(s![..len, b..b + 1, ..]).to_owned();
        let (alone, tape) = cpu
            .forward_train(
                x_b.view(),
                Some(row(&h0).view()),
                c0.as_ref().map(row).as_ref().map(|c| c.view()),
            )
            .unwrap();
        let g_out_b = g_out.slice(s![..len, b..b + 1, ..]).to_owned();
        let g_c_b = g_c.as_ref().map(row);
        let alone_grads = cpu
            .backward(
                tape,
                OutputGrads {
                    output: Some(g_out_b.view()),
                    h_n: Some(row(&g_h).view()),
                    c_n: g_c_b.as_ref().map(|c| c.view()),
                },
                true,
            )
            .unwrap();
        close(
            &format!("{what}: output"),
            packed.output.slice(s![..len, b..b + 1, ..]),
            alone.output.view(),
        );
        let padding = packed.output.slice(s![len.., b, ..]);
        assert!(
            padding.iter().all(|&v| v == 0.0),
            "{what}: output past the end is not zero"
        );
        close(
            &format!("{what}: h_n"),
            packed.h_n.slice(s![.., b..b + 1, ..]),
            alone.h_n.view(),
        );
        if let (Some(c), Some(c_alone)) = (&packed.c_n, &alone.c_n) {
            close(
                &format!("{what}: c_n"),
                c.slice(s![.., b..b + 1, ..]),
                c_alone.view(),
            );
        }
        let gx = grads.input.as_ref().unwrap();
        close(
            &format!("{what}: d input"),
            gx.slice(s![..len, b..b + 1, ..]),
            alone_grads.input.as_ref().unwrap().view(),
        );
        assert!(
            gx.slice(s![len.., b, ..]).iter().all(|&v| v == 0.0),
            "{what}: gradient of padding is not zero"
        );
        close(
            &format!("{what}: d h0"),
            grads.h0.slice(s![.., b..b + 1, ..]),
            alone_grads.h0.view(),
        );
        if let (Some(g), Some(g_alone)) = (&grads.c0, &alone_grads.c0) {
            close(
                &format!("{what}: d c0"),
                g.slice(s![.., b..b + 1, ..]),
                g_alone.view(),
            );
        }
        for (sum, g) in param_sum
            .slices_mut()
            .into_iter()
            .zip(alone_grads.params.slices())
        {
            sum.iter_mut().zip(g).for_each(|(s, v)| *s += v);
        }
    }
    // Parameter gradients of the batch = the sum over the sequences alone.
    for ((name, got), (_, want)) in grads
        .params
        .named(&config)
        .into_iter()
        .zip(param_sum.named(&config))
    {
        let err = got
            .iter()
            .zip(want.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            err <= 1e-4,
            "{mode} {backend}: d {name}: max difference {err:e}"
        );
    }
}

#[test]
fn cpu_packed_batches_equal_each_sequence_alone() {
    for mode in Mode::ALL {
        check(mode, Backend::Cpu);
    }
}

#[test]
fn gpu_packed_batches_equal_each_sequence_alone() {
    if common::gpu().is_none() {
        return;
    }
    for mode in Mode::ALL {
        check(mode, Backend::Gpu);
    }
}

#[test]
fn bad_lengths_are_errors_naming_them() {
    let model = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, 3, 5), 0).unwrap();
    let x = Array3::<f32>::zeros((4, 2, 3));
    match model.forward_packed(x.view(), &[4], None, None) {
        Err(RnnError::Shape { tensor, .. }) => assert_eq!(tensor, "lengths"),
        other => panic!("one length for two rows: {other:?}"),
    }
    for bad in [[4, 0], [5, 1]] {
        let err = model
            .forward_packed(x.view(), &bad, None, None)
            .unwrap_err();
        assert!(
            matches!(err, RnnError::Length { index: _, .. }),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains("lengths["), "{err}");
    }
}
