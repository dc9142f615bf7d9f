//! Dropout between stacked layers: training forwards multiply each lower layer's output by a
//! mask of zeros and 1/(1-p) (checked against the stack rebuilt by hand from one-layer models),
//! inference forwards never drop, gradients pass back through the same mask (finite
//! differences in f64), and the GPU drops and differentiates as the CPU does.

mod common;

use ndarray::{Array3, Axis, s};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rnn_wgpu::dropout::draw_masks;
use rnn_wgpu::{CellParams, Mode, OutputGrads, Rnn, RnnConfig, RnnParams};

fn random3<T: rand::distr::uniform::SampleUniform + From<f32>>(
    rng: &mut StdRng,
    dims: (usize, usize, usize),
) -> Array3<T> {
    Array3::from_shape_simple_fn(dims, || T::from(rng.random_range(-1.0f32..1.0)))
}

/// A one-layer model holding `cell` of `config` (the layer's input size given).
fn one_layer<T: rnn_wgpu::Real>(
    config: &RnnConfig,
    input_size: usize,
    cell: &CellParams<T>,
) -> Rnn<T> {
    let single = RnnConfig::new(config.mode, input_size, config.hidden_size);
    Rnn::from_params(
        single,
        RnnParams {
            cells: vec![cell.clone()],
        },
    )
    .unwrap()
}

#[test]
fn training_forward_drops_the_lower_layer_output_and_inference_does_not() {
    let config = RnnConfig::new(Mode::Lstm, 5, 7).layers(2).dropout(0.4);
    let model = Rnn::<f32>::new(config.clone(), 3).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let (seq, batch) = (6, 4);
    let x: Array3<f32> = random3(&mut rng, (seq, batch, 5));

    model.seed_dropout(42);
    let (trained, _) = model.forward_train(x.view(), None, None).unwrap();
    let masks = draw_masks::<f32>(&config, seq, batch, &mut StdRng::seed_from_u64(42));
    assert_eq!(masks.len(), 1);
    // The mask: zeros and 1/(1-p) only, about p of them zero.
    let zeros = masks[0].iter().filter(|&&m| m == 0.0).count() as f32 / masks[0].len() as f32;
    assert!(masks[0].iter().all(|&m| m == 0.0 || m == 1.0 / 0.6));
    assert!((0.25..0.55).contains(&zeros), "dropped fraction {zeros}");

    // The same stack by hand: layer 0, the mask, layer 1.
    let cells = &model.params().cells;
    let below = one_layer(&config, 5, &cells[0])
        .forward(x.view(), None, None)
        .unwrap();
    let dropped = &below.output * &masks[0];
    let above = one_layer(&config, 7, &cells[1])
        .forward(dropped.view(), None, None)
        .unwrap();
    let err = (&trained.output - &above.output)
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        err <= 1e-6,
        "training output differs from the stack by hand by {err:e}"
    );
    // h_n is each layer's own state, not dropped.
    assert_eq!(
        trained.h_n.index_axis(Axis(0), 0),
        below.h_n.index_axis(Axis(0), 0)
    );

    // Inference: no dropout, the same as the model with p = 0.
    let plain = Rnn::from_params(config.clone().dropout(0.0), model.params().clone()).unwrap();
    assert_eq!(
        model.forward(x.view(), None, None).unwrap(),
        plain.forward(x.view(), None, None).unwrap()
    );
    let err = (&trained.output - &plain.forward(x.view(), None, None).unwrap().output)
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(err > 1e-3, "the training forward dropped nothing");
}

/// L = sum(output * gy) of a training forward with the masks of `seed`.
fn loss(model: &Rnn<f64>, x: &Array3<f64>, gy: &Array3<f64>, seed: u64) -> f64 {
    model.seed_dropout(seed);
    let (out, _) = model.forward_train(x.view(), None, None).unwrap();
    (&out.output * gy).sum()
}

#[test]
fn gradients_through_dropout_match_finite_differences() {
    const EPS: f64 = 1e-6;
    for mode in [Mode::Gru, Mode::Lstm] {
        let config = RnnConfig::new(mode, 3, 4)
            .layers(3)
            .bidirectional(true)
            .dropout(0.5);
        let mut model = Rnn::<f64>::new(config, 9).unwrap();
        let mut rng = StdRng::seed_from_u64(2);
        let x: Array3<f64> = random3(&mut rng, (4, 2, 3));
        let gy: Array3<f64> = random3(&mut rng, (4, 2, 8));
        let seed = 5;
        model.seed_dropout(seed);
        let (_, tape) = model.forward_train(x.view(), None, None).unwrap();
        let upstream = OutputGrads {
            output: Some(gy.view()),
            ..Default::default()
        };
        let grads = model.backward(tape, upstream, true).unwrap();
        let mut analytic = grads.params.clone();
        let analytic = analytic.slices_mut();
        let count = analytic.len();
        for (k, analytic) in analytic.into_iter().enumerate() {
            for i in (0..analytic.len()).step_by(3) {
                let original = model.params_mut().slices_mut()[k][i];
                model.params_mut().slices_mut()[k][i] = original + EPS;
                let up = loss(&model, &x, &gy, seed);
                model.params_mut().slices_mut()[k][i] = original - EPS;
                let down = loss(&model, &x, &gy, seed);
                model.params_mut().slices_mut()[k][i] = original;
                let numeric = (up - down) / (2.0 * EPS);
                assert!(
                    (numeric - analytic[i]).abs() <= 1e-6 * (1.0 + numeric.abs()),
                    "{mode:?} tensor {k}/{count} [{i}]: numeric {numeric}, analytic {}",
                    analytic[i]
                );
            }
        }
    }
}

#[test]
fn gpu_drops_and_differentiates_as_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let config = RnnConfig::new(Mode::Lstm, 6, 10)
        .layers(3)
        .bidirectional(true)
        .dropout(0.3);
    let cpu = Rnn::<f32>::new(config, 4).unwrap();
    let gpu = cpu.clone().with_gpu(ctx).unwrap();
    let mut rng = StdRng::seed_from_u64(8);
    let x: Array3<f32> = random3(&mut rng, (5, 3, 6));
    let gy: Array3<f32> = random3(&mut rng, (5, 3, 20));
    let upstream = OutputGrads {
        output: Some(gy.view()),
        ..Default::default()
    };
    let run = |model: &Rnn<f32>| {
        model.seed_dropout(11);
        let (out, tape) = model.forward_train(x.view(), None, None).unwrap();
        (out, model.backward(tape, upstream, true).unwrap())
    };
    let ((cpu_out, cpu_grads), (gpu_out, gpu_grads)) = (run(&cpu), run(&gpu));
    let close = |what: &str, a: &[f32], b: &[f32]| {
        let err = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= 2e-4, "{what}: gpu and cpu differ by {err:e}");
    };
    close(
        "output",
        gpu_out.output.as_slice().unwrap(),
        cpu_out.output.as_slice().unwrap(),
    );
    close(
        "input gradient",
        gpu_grads.input.as_ref().unwrap().as_slice().unwrap(),
        cpu_grads.input.as_ref().unwrap().as_slice().unwrap(),
    );
    let (mut g, mut c) = (gpu_grads.params, cpu_grads.params);
    for (g, c) in g.slices_mut().iter().zip(c.slices_mut()) {
        close("parameter gradient", g, c);
    }
    // An inference forward on the same GPU plan afterwards drops nothing.
    let plain = cpu.forward(x.view(), None, None).unwrap();
    let on_gpu = gpu.forward(x.view(), None, None).unwrap();
    close(
        "inference output",
        on_gpu.output.as_slice().unwrap(),
        plain.output.slice(s![.., .., ..]).as_slice().unwrap(),
    );
}

#[test]
fn dropout_outside_zero_to_one_is_refused() {
    for p in [-0.1f32, 1.0, f32::NAN] {
        let err = Rnn::<f32>::new(RnnConfig::new(Mode::Gru, 2, 3).dropout(p), 0).unwrap_err();
        assert!(err.to_string().contains("dropout"), "{err}");
    }
}
