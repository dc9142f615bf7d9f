//! One to many (the seed notes' "1 vs N"): a feature vector generates a sequence, as a caption
//! from an image's features. The vector is one-hot(a) ++ one-hot(b) for digits a, b, blurred by
//! uniform noise in [-0.4, 0.4] on every entry; the sequence is (a + b t) mod 10 for t = 0..8,
//! each step a 10-way classification. Trains on fresh noisy vectors of all 100 pairs each step,
//! then scores 1,000 fresh ones: per-step accuracy and whole sequences right.
//!
//!     cargo run --release --example one_to_many

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rnn_wgpu::nn::{Feed, Linear, OneToMany, cross_entropy};
use rnn_wgpu::optim::Adam;
use rnn_wgpu::{Mode, Rnn, RnnConfig};

const STEPS: usize = 8;
const NOISE: f32 = 0.4;

/// (vectors (N, 20), targets (T*N) in (t, n) order) for the pairs given, freshly blurred.
fn batch(pairs: &[(usize, usize)], rng: &mut StdRng) -> (Array2<f32>, Vec<usize>) {
    let mut vectors =
        Array2::from_shape_simple_fn((pairs.len(), 20), || rng.random_range(-NOISE..NOISE));
    for (n, &(a, b)) in pairs.iter().enumerate() {
        vectors[[n, a]] += 1.0;
        vectors[[n, 10 + b]] += 1.0;
    }
    let targets = (0..STEPS)
        .flat_map(|t| pairs.iter().map(move |&(a, b)| (a + b * t) % 10))
        .collect();
    (vectors, targets)
}

fn argmax(values: &[f32]) -> usize {
    (0..values.len())
        .max_by(|&i, &j| values[i].total_cmp(&values[j]))
        .unwrap_or(0)
}

fn main() -> rnn_wgpu::Result<()> {
    let mut rng = StdRng::seed_from_u64(7);
    let pairs: Vec<(usize, usize)> = (0..100).map(|k| (k / 10, k % 10)).collect();
    let rnn = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, 20, 64), 1)?;
    let mut model = OneToMany::new(rnn, Linear::new(64, 10, 2)?, Feed::EveryStep)?;
    let mut adam = Adam::new(1e-2);
    let start = std::time::Instant::now();
    let mut loss = f32::NAN;
    for _ in 0..800 {
        let (vectors, targets) = batch(&pairs, &mut rng);
        let loss_of = |y: ndarray::ArrayView2<'_, f32>| cross_entropy(y, &targets);
        loss = model.train_step(vectors.view(), STEPS, loss_of, &mut adam, Some(1.0))?;
    }
    let seconds = start.elapsed().as_secs_f32();
    // 1,000 fresh noisy vectors: ten of every pair.
    let test: Vec<(usize, usize)> = (0..10).flat_map(|_| pairs.iter().copied()).collect();
    let (vectors, targets) = batch(&test, &mut rng);
    let y = model.predict(vectors.view(), STEPS)?;
    let rows = y.to_shape((STEPS * test.len(), 10)).expect("standard");
    let right: Vec<bool> = rows
        .outer_iter()
        .zip(&targets)
        .map(|(row, &t)| argmax(row.as_slice().expect("rows")) == t)
        .collect();
    let steps_right = right.iter().filter(|&&r| r).count();
    let sequences_right = (0..test.len())
        .filter(|&n| (0..STEPS).all(|t| right[t * test.len() + n]))
        .count();
    println!("800 steps in {seconds:.1} s, final training loss {loss:.4}");
    println!(
        "fresh noisy vectors: steps right {steps_right}/{} = {:.1}%, whole sequences right {sequences_right}/{} = {:.1}%",
        right.len(),
        100.0 * steps_right as f32 / right.len() as f32,
        test.len(),
        100.0 * sequences_right as f32 / test.len() as f32
    );
    Ok(())
}
