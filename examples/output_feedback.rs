//! The recurrence from the previous output (the seed notes' second structure, NARX):
//! h_t = tanh(W x_t + U o_{t-1} + b), o_t = V h_t + c, on a seasonal series
//! y_t = 0.6 y_{t-1} + 0.8 sin(2 pi t / 12) + noise (sd 0.1), with x_t the month's sin and cos.
//! Trained with teacher forcing (the true y_{t-1} fed in, all 600 training steps as one batch),
//! then on the next 120 steps: the one-step forecast and a free-running 12-step forecast, each
//! beside the naive forecast (the last value seen).
//!
//!     cargo run --release --example output_feedback

use ndarray::{Array2, Array3, Axis, s};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rnn_wgpu::nn::{OutputFeedback, mse};
use rnn_wgpu::optim::Adam;

const TRAIN: usize = 600;
const TEST: usize = 120;
const HORIZON: usize = 12;

fn month(t: usize) -> [f32; 2] {
    let angle = std::f32::consts::TAU * t as f32 / 12.0;
    [angle.sin(), angle.cos()]
}

/// The series and its inputs: y (N + 1) with y[0] the start, x (N, 1, 2).
fn series(n: usize, rng: &mut StdRng) -> (Vec<f32>, Array3<f32>) {
    let mut y = vec![0.0f32];
    for t in 1..=n {
        // Box-Muller noise, sd 0.1.
        let (u1, u2): (f32, f32) = (rng.random_range(1e-6..1.0), rng.random_range(0.0..1.0));
        let noise = 0.1 * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
        y.push(0.6 * y[t - 1] + 0.8 * month(t)[0] + noise);
    }
    let x = Array3::from_shape_fn((n, 1, 2), |(t, _, k)| month(t + 1)[k]);
    (y, x)
}

/// (T, 1, 1) from values.
fn column(values: &[f32]) -> Array3<f32> {
    Array3::from_shape_vec((values.len(), 1, 1), values.to_vec()).expect("sized")
}

fn mean_squared(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / a.len() as f32
}

fn main() -> rnn_wgpu::Result<()> {
    let mut rng = StdRng::seed_from_u64(3);
    let (y, x) = series(TRAIN + TEST, &mut rng);
    let mut model = OutputFeedback::new(2, 16, 1, 5)?;
    let mut adam = Adam::new(1e-2);
    let (x_train, previous) = (x.slice(s![..TRAIN, .., ..]), column(&y[..TRAIN]));
    let target = Array2::from_shape_vec((TRAIN, 1), y[1..=TRAIN].to_vec()).expect("sized");
    let start = std::time::Instant::now();
    let mut loss = f32::NAN;
    for _ in 0..400 {
        let loss_of = |o: ndarray::ArrayView2<'_, f32>| mse(o, target.view());
        loss = model.train_step(x_train, previous.view(), loss_of, &mut adam, Some(1.0))?;
    }
    let seconds = start.elapsed().as_secs_f32();
    // One step ahead on the test steps: the true previous value fed in.
    let (x_test, truth) = (x.slice(s![TRAIN.., .., ..]), &y[TRAIN + 1..]);
    let one_step = model.forward_teacher(x_test, column(&y[TRAIN..TRAIN + TEST]).view())?;
    let one_step: Vec<f32> = one_step.iter().copied().collect();
    let naive_one: Vec<f32> = y[TRAIN..TRAIN + TEST].to_vec();
    // Free running 12 steps from each test origin: only the last value seen is given.
    let (mut free_err, mut naive_err, mut count) = (0.0, 0.0, 0);
    for origin in (0..TEST - HORIZON).step_by(HORIZON) {
        let at = TRAIN + origin;
        let start_value = Array2::from_elem((1, 1), y[at]);
        let window = x.slice(s![at..at + HORIZON, .., ..]);
        let forecast = model.run_free(window, start_value.view())?;
        let forecast: Vec<f32> = forecast.index_axis(Axis(1), 0).iter().copied().collect();
        let actual = &y[at + 1..=at + HORIZON];
        free_err += mean_squared(&forecast, actual);
        naive_err += mean_squared(&[y[at]; HORIZON], actual);
        count += 1;
    }
    println!(
        "400 teacher-forced steps in {seconds:.1} s, training MSE {loss:.4} (noise variance 0.0100)"
    );
    println!(
        "one step ahead, {TEST} test steps: MSE {:.4} vs naive {:.4}",
        mean_squared(&one_step, truth),
        mean_squared(&naive_one, truth)
    );
    println!(
        "free-running {HORIZON}-step forecasts from {count} origins: MSE {:.4} vs naive {:.4}",
        free_err / count as f32,
        naive_err / count as f32
    );
    Ok(())
}
