//! The seed notes' remaining structures: one to many (a vector to a sequence) and the
//! recurrence from the previous output, trained with teacher forcing. PyTorch has no module for
//! either, so their gradients are checked against finite differences of the loss; the GPU
//! against the CPU; teacher forcing with the model's own outputs against the free run.

mod common;

use ndarray::{Array2, Array3, Axis};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rnn_wgpu::nn::{Feed, Linear, OneToMany, OutputFeedback, mse};
use rnn_wgpu::optim::Sgd;
use rnn_wgpu::{Mode, Rnn, RnnConfig};

fn random2(rng: &mut StdRng, dims: (usize, usize)) -> Array2<f32> {
    Array2::from_shape_simple_fn(dims, || rng.random_range(-1.0f32..1.0))
}

fn random3(rng: &mut StdRng, dims: (usize, usize, usize)) -> Array3<f32> {
    Array3::from_shape_simple_fn(dims, || rng.random_range(-1.0f32..1.0))
}

/// The gradient one SGD step with lr = 1 applied (before - after), against the central
/// difference of `loss` at a few entries of every parameter tensor.
fn check_gradients(
    what: &str,
    before: Vec<Vec<f32>>,
    after: Vec<Vec<f32>>,
    mut loss: impl FnMut(usize, usize, f32) -> f32,
) {
    let eps = 1e-2;
    for (k, (b, a)) in before.iter().zip(&after).enumerate() {
        for i in [0, b.len() / 2, b.len() - 1] {
            let analytic = b[i] - a[i];
            let numeric = (loss(k, i, eps) - loss(k, i, -eps)) / (2.0 * eps);
            assert!(
                (analytic - numeric).abs() <= 2e-3 * (1.0 + numeric.abs()),
                "{what}: tensor {k} entry {i}: backprop {analytic}, finite difference {numeric}"
            );
        }
    }
}

/// Adds `delta` to entry i of tensor k, counting the stack's tensors, then the head's weight
/// and bias.
fn nudge(rnn: &mut Rnn<f32>, head: &mut Linear, (k, i): (usize, usize), delta: f32) {
    let tensors = rnn.params().slices().len();
    if k < tensors {
        rnn.params_mut().slices_mut()[k][i] += delta;
    } else if k == tensors {
        head.weight.as_slice_mut().unwrap()[i] += delta;
    } else {
        head.bias[i] += delta;
    }
}

fn one_to_many(feed: Feed) -> OneToMany {
    let rnn = Rnn::<f32>::new(RnnConfig::new(Mode::Gru, 3, 5).layers(2), 4).unwrap();
    OneToMany::new(rnn, Linear::new(5, 2, 5).unwrap(), feed).unwrap()
}

/// Every parameter of a stack and its head: the stack's tensors, then the head's weight and bias.
fn all_params(rnn: &Rnn<f32>, head: &Linear) -> Vec<Vec<f32>> {
    let mut all: Vec<Vec<f32>> = rnn.params().slices().iter().map(|s| s.to_vec()).collect();
    all.push(head.weight.as_slice().unwrap().to_vec());
    all.push(head.bias.to_vec());
    all
}

#[test]
fn one_to_many_gradients_equal_finite_differences() {
    let mut rng = StdRng::seed_from_u64(1);
    let (vectors, target) = (random2(&mut rng, (3, 3)), random2(&mut rng, (4 * 3, 2)));
    for feed in [Feed::FirstStep, Feed::EveryStep] {
        let model = one_to_many(feed);
        let mut stepped = model.clone();
        stepped
            .train_step(
                vectors.view(),
                4,
                |y| mse(y, target.view()),
                &mut Sgd::new(1.0, 0.0),
                None,
            )
            .unwrap();
        let loss = |k: usize, i: usize, delta: f32| {
            let mut m = model.clone();
            nudge(&mut m.rnn, &mut m.head, (k, i), delta);
            let y = m.predict(vectors.view(), 4).unwrap();
            let rows = y.into_shape_with_order((12, 2)).unwrap();
            mse(rows.view(), target.view()).unwrap().0
        };
        check_gradients(
            &format!("one to many, {feed:?}"),
            all_params(&model.rnn, &model.head),
            all_params(&stepped.rnn, &stepped.head),
            loss,
        );
    }
}

#[test]
fn one_to_many_feeds_the_vector_where_asked_and_runs_the_same_on_the_gpu() {
    let mut rng = StdRng::seed_from_u64(2);
    let vectors = random2(&mut rng, (2, 3));
    let model = one_to_many(Feed::FirstStep);
    // Fed at the first step only: the stack sees the vector, then zeros.
    let y = model.predict(vectors.view(), 5).unwrap();
    let mut x = Array3::zeros((5, 2, 3));
    x.index_axis_mut(Axis(0), 0).assign(&vectors);
    let out = model.rnn.forward(x.view(), None, None).unwrap().output;
    let rows = out.into_shape_with_order((10, 5)).unwrap();
    let want = model.head.forward(rows.view()).unwrap();
    let got = y.clone().into_shape_with_order((10, 2)).unwrap();
    assert!((&got - &want).iter().all(|d| d.abs() < 1e-6));
    let Some(ctx) = common::gpu() else { return };
    let on_gpu = OneToMany::new(
        model.rnn.clone().with_gpu(ctx).unwrap(),
        model.head.clone(),
        Feed::FirstStep,
    )
    .unwrap();
    let g = on_gpu.predict(vectors.view(), 5).unwrap();
    assert!(
        (&g - &y).iter().all(|d| d.abs() < 1e-4),
        "GPU differs from CPU"
    );
}

#[test]
fn output_feedback_gradients_equal_finite_differences() {
    let mut rng = StdRng::seed_from_u64(3);
    let (x, previous) = (random3(&mut rng, (5, 2, 3)), random3(&mut rng, (5, 2, 2)));
    let target = random2(&mut rng, (10, 2));
    let model = OutputFeedback::new(3, 6, 2, 7).unwrap();
    let mut stepped = model.clone();
    stepped
        .train_step(
            x.view(),
            previous.view(),
            |o| mse(o, target.view()),
            &mut Sgd::new(1.0, 0.0),
            None,
        )
        .unwrap();
    let loss = |k: usize, i: usize, delta: f32| {
        let mut m = model.clone();
        nudge(&mut m.cell, &mut m.head, (k, i), delta);
        let o = m.forward_teacher(x.view(), previous.view()).unwrap();
        mse(
            o.into_shape_with_order((10, 2)).unwrap().view(),
            target.view(),
        )
        .unwrap()
        .0
    };
    // W_hh (tensor 1) never acts: the cell starts from zeros each step, so its gradient is 0.
    let before = all_params(&model.cell, &model.head);
    let after = all_params(&stepped.cell, &stepped.head);
    assert_eq!(before[1], after[1]);
    check_gradients("output feedback", before, after, loss);
}

#[test]
fn teacher_forcing_with_its_own_outputs_is_the_free_run_on_both_backends() {
    let mut rng = StdRng::seed_from_u64(4);
    let x = random3(&mut rng, (6, 3, 3));
    let start = random2(&mut rng, (3, 2));
    let model = OutputFeedback::new(3, 6, 2, 8).unwrap();
    let free = model.run_free(x.view(), start.view()).unwrap();
    // o_{t-1} for every step: the start, then the free run's own outputs.
    let mut previous = Array3::zeros(free.raw_dim());
    previous.index_axis_mut(Axis(0), 0).assign(&start);
    previous
        .slice_mut(ndarray::s![1.., .., ..])
        .assign(&free.slice(ndarray::s![..5, .., ..]));
    let teacher = model.forward_teacher(x.view(), previous.view()).unwrap();
    assert!((&teacher - &free).iter().all(|d| d.abs() < 1e-6));
    let Some(ctx) = common::gpu() else { return };
    let on_gpu = OutputFeedback {
        cell: model.cell.clone().with_gpu(ctx).unwrap(),
        head: model.head.clone(),
    };
    let g = on_gpu.run_free(x.view(), start.view()).unwrap();
    assert!(
        (&g - &free).iter().all(|d| d.abs() < 1e-4),
        "GPU free run differs from CPU"
    );
}
