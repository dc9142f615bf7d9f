//! Finite-difference gradient checks in f64: every gradient the explicit BPTT returns (input, h0,
//! c0, every parameter) against central differences of the scalar
//! L = sum(output * gy) + sum(h_n * ghn) [+ sum(c_n * gcn)], on random small shapes.

use ndarray::Array3;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rnn_wgpu::{Mode, OutputGrads, Rnn, RnnConfig};

struct Problem {
    model: Rnn<f64>,
    input: Array3<f64>,
    h0: Array3<f64>,
    c0: Option<Array3<f64>>,
    gy: Array3<f64>,
    ghn: Array3<f64>,
    gcn: Option<Array3<f64>>,
}

fn random3(rng: &mut StdRng, dims: (usize, usize, usize)) -> Array3<f64> {
    Array3::from_shape_simple_fn(dims, || rng.random_range(-1.0..1.0))
}

impl Problem {
    fn new(config: RnnConfig, seq: usize, batch: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let states = (
            config.num_layers * config.directions(),
            batch,
            config.hidden_size,
        );
        let input_dims = if config.batch_first {
            (batch, seq, config.input_size)
        } else {
            (seq, batch, config.input_size)
        };
        let output_dims = (input_dims.0, input_dims.1, config.output_size());
        let lstm = config.mode == Mode::Lstm;
        // Weights a little larger than the default init, so every nonlinearity is exercised.
        let mut model = Rnn::<f64>::new(config, seed).expect("valid config");
        for cell in &mut model.params_mut().cells {
            cell.weight_ih.mapv_inplace(|w| w * 3.0);
            cell.weight_hh.mapv_inplace(|w| w * 3.0);
        }
        Problem {
            input: random3(&mut rng, input_dims),
            h0: random3(&mut rng, states),
            c0: lstm.then(|| random3(&mut rng, states)),
            gy: random3(&mut rng, output_dims),
            ghn: random3(&mut rng, states),
            gcn: lstm.then(|| random3(&mut rng, states)),
            model,
        }
    }

    fn loss(&self) -> f64 {
        let out = self
            .model
            .forward(
                self.input.view(),
                Some(self.h0.view()),
                self.c0.as_ref().map(|c| c.view()),
            )
            .expect("forward");
        let mut loss = (&out.output * &self.gy).sum() + (&out.h_n * &self.ghn).sum();
        if let (Some(c_n), Some(gcn)) = (&out.c_n, &self.gcn) {
            loss += (c_n * gcn).sum();
        }
        loss
    }
}

/// Central differences of the loss in every entry of the tensor `entry` picks.
fn numeric_grad(problem: &mut Problem, entry: impl Fn(&mut Problem) -> &mut [f64]) -> Vec<f64> {
    const EPS: f64 = 1e-6;
    let len = entry(problem).len();
    (0..len)
        .map(|k| {
            let original = entry(problem)[k];
            entry(problem)[k] = original + EPS;
            let plus = problem.loss();
            entry(problem)[k] = original - EPS;
            let minus = problem.loss();
            entry(problem)[k] = original;
            (plus - minus) / (2.0 * EPS)
        })
        .collect()
}

fn assert_close(what: &str, analytic: &[f64], numeric: &[f64]) {
    assert_eq!(analytic.len(), numeric.len(), "{what}: lengths");
    for (k, (a, n)) in analytic.iter().zip(numeric).enumerate() {
        assert!(
            (a - n).abs() <= 1e-7 + 1e-6 * n.abs(),
            "{what}[{k}]: analytic {a}, finite difference {n}, diff {:e}",
            (a - n).abs()
        );
    }
}

fn check(config: RnnConfig, seq: usize, batch: usize, seed: u64) {
    let label = format!("{:?} T={seq} B={batch}", config);
    let mut p = Problem::new(config.clone(), seq, batch, seed);
    let (_, tape) = p
        .model
        .forward_train(
            p.input.view(),
            Some(p.h0.view()),
            p.c0.as_ref().map(|c| c.view()),
        )
        .expect("forward");
    let upstream = OutputGrads {
        output: Some(p.gy.view()),
        h_n: Some(p.ghn.view()),
        c_n: p.gcn.as_ref().map(|g| g.view()),
    };
    let grads = p.model.backward(tape, upstream, true).expect("backward");

    let input = grads.input.as_ref().expect("asked for");
    assert_close(
        &format!("{label} grad.input"),
        input.as_slice().unwrap(),
        &numeric_grad(&mut p, |p| p.input.as_slice_mut().unwrap()),
    );
    assert_close(
        &format!("{label} grad.h0"),
        grads.h0.as_slice().unwrap(),
        &numeric_grad(&mut p, |p| p.h0.as_slice_mut().unwrap()),
    );
    if let Some(c0) = &grads.c0 {
        assert_close(
            &format!("{label} grad.c0"),
            c0.as_slice().unwrap(),
            &numeric_grad(&mut p, |p| p.c0.as_mut().unwrap().as_slice_mut().unwrap()),
        );
    }
    for (k, cell) in grads.params.cells.iter().enumerate() {
        let numeric = numeric_grad(&mut p, |p| {
            p.model.params_mut().cells[k]
                .weight_ih
                .as_slice_mut()
                .unwrap()
        });
        assert_close(
            &format!("{label} cell {k} weight_ih"),
            cell.weight_ih.as_slice().unwrap(),
            &numeric,
        );
        let numeric = numeric_grad(&mut p, |p| {
            p.model.params_mut().cells[k]
                .weight_hh
                .as_slice_mut()
                .unwrap()
        });
        assert_close(
            &format!("{label} cell {k} weight_hh"),
            cell.weight_hh.as_slice().unwrap(),
            &numeric,
        );
        if let Some(b) = &cell.bias_ih {
            let numeric = numeric_grad(&mut p, |p| {
                p.model.params_mut().cells[k]
                    .bias_ih
                    .as_mut()
                    .unwrap()
                    .as_slice_mut()
                    .unwrap()
            });
            assert_close(
                &format!("{label} cell {k} bias_ih"),
                b.as_slice().unwrap(),
                &numeric,
            );
        }
        if let Some(b) = &cell.bias_hh {
            let numeric = numeric_grad(&mut p, |p| {
                p.model.params_mut().cells[k]
                    .bias_hh
                    .as_mut()
                    .unwrap()
                    .as_slice_mut()
                    .unwrap()
            });
            assert_close(
                &format!("{label} cell {k} bias_hh"),
                b.as_slice().unwrap(),
                &numeric,
            );
        }
    }
}

fn each_mode(f: impl Fn(Mode, u64)) {
    for (i, mode) in Mode::ALL.into_iter().enumerate() {
        f(mode, 10 + i as u64);
    }
}

#[test]
fn two_layers() {
    each_mode(|mode, seed| check(RnnConfig::new(mode, 3, 4).layers(2), 4, 2, seed));
}

#[test]
fn three_layers_bidirectional() {
    each_mode(|mode, seed| {
        check(
            RnnConfig::new(mode, 2, 3).layers(3).bidirectional(true),
            3,
            2,
            seed,
        )
    });
}

#[test]
fn single_step_and_single_batch() {
    each_mode(|mode, seed| {
        check(RnnConfig::new(mode, 3, 5).bidirectional(true), 1, 3, seed);
        check(RnnConfig::new(mode, 4, 3).layers(2), 5, 1, seed + 100);
    });
}

#[test]
fn without_bias() {
    each_mode(|mode, seed| {
        check(
            RnnConfig::new(mode, 3, 4).bias(false).bidirectional(true),
            3,
            2,
            seed,
        )
    });
}

#[test]
fn batch_first() {
    each_mode(|mode, seed| {
        check(
            RnnConfig::new(mode, 3, 4).layers(2).batch_first(true),
            4,
            3,
            seed,
        )
    });
}
