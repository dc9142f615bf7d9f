//! Time-series regression (the seed notes' application): an LSTM reads a look-back window of the
//! airline passengers series and predicts the next month, trained with MSE and Adam. The model
//! works on monthly log-changes (the series grows and its seasonal swing grows with it, so raw
//! values in the test years lie outside anything seen in training). Reports the test RMSE in
//! thousands of passengers beside the naive last-value forecast, and plots prediction vs truth.
//!
//!     cargo run --release --example timeseries

use ndarray::{Array2, Array3};
use rnn_wgpu::nn::{Linear, ManyToOne, mse};
use rnn_wgpu::optim::Adam;
use rnn_wgpu::plot::{Series, write_chart_svg};
use rnn_wgpu::{Mode, Rnn, RnnConfig, RnnError};

const LOOK_BACK: usize = 12;
const TEST_MONTHS: usize = 36;

fn read_series(path: &str) -> rnn_wgpu::Result<Vec<f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| RnnError::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let value = l.rsplit(',').next().unwrap_or_default().trim();
            value.parse().map_err(|_| RnnError::File {
                path: path.into(),
                message: format!("not a number: {value:?}"),
            })
        })
        .collect()
}

fn main() -> rnn_wgpu::Result<()> {
    let passengers = read_series(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/airline_passengers.csv"
    ))?;
    // d[i] = log p[i+1] - log p[i]: what the model predicts, scaled to unit spread.
    let changes: Vec<f64> = passengers.windows(2).map(|w| (w[1] / w[0]).ln()).collect();
    let first_test = passengers.len() - TEST_MONTHS; // index into passengers of the first test month
    let train_changes = &changes[..first_test - 1];
    let scale = train_changes.iter().map(|d| d * d).sum::<f64>().sqrt()
        / (train_changes.len() as f64).sqrt();
    let scaled: Vec<f32> = changes.iter().map(|d| (d / scale) as f32).collect();

    // Sample k: the LOOK_BACK changes before change k, predicting change k.
    let window =
        |k: usize| Array3::from_shape_fn((LOOK_BACK, 1, 1), |(t, _, _)| scaled[k - LOOK_BACK + t]);
    let train_targets: Vec<usize> = (LOOK_BACK..first_test - 1).collect();
    let hidden = 32;
    let rnn = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, 1, hidden), 3)?;
    let mut model = ManyToOne::new(rnn, Linear::new(hidden, 1, 4))?;
    let mut adam = Adam::new(3e-3);
    for epoch in 1..=150 {
        // One batch of every training window: (T, B, 1).
        let b = train_targets.len();
        let x = Array3::from_shape_fn((LOOK_BACK, b, 1), |(t, i, _)| {
            window(train_targets[i])[[t, 0, 0]]
        });
        let y = Array2::from_shape_fn((b, 1), |(i, _)| scaled[train_targets[i]]);
        let loss = model.train_step(
            x.view(),
            |prediction| mse(prediction, y.view()),
            &mut adam,
            None,
        )?;
        if epoch % 30 == 0 {
            println!("epoch {epoch:3}  training MSE (scaled log-changes) {loss:.4}");
        }
    }

    // One-step-ahead forecasts of the test months from the true history.
    let (mut model_sq, mut naive_sq) = (0.0, 0.0);
    let mut predicted = Vec::new();
    for month in first_test..passengers.len() {
        let k = month - 1; // change k leads from month-1 to month
        let change = model.predict(window(k).view())?[[0, 0]] as f64 * scale;
        let forecast = passengers[month - 1] * change.exp();
        model_sq += (forecast - passengers[month]).powi(2);
        naive_sq += (passengers[month - 1] - passengers[month]).powi(2);
        predicted.push((month as f64, forecast));
    }
    let (model_rmse, naive_rmse) = (
        (model_sq / TEST_MONTHS as f64).sqrt(),
        (naive_sq / TEST_MONTHS as f64).sqrt(),
    );
    println!(
        "test RMSE over the last {TEST_MONTHS} months: LSTM {model_rmse:.1}, naive last value {naive_rmse:.1} (thousands of passengers)"
    );
    let history: Vec<(f64, f64)> = passengers
        .iter()
        .enumerate()
        .map(|(i, &p)| (i as f64, p))
        .collect();
    let plot = std::env::temp_dir().join("timeseries.svg");
    write_chart_svg(
        &plot,
        "airline passengers (thousands): truth and one-month-ahead LSTM forecast",
        &[
            Series {
                name: "truth",
                points: &history,
            },
            Series {
                name: "LSTM forecast",
                points: &predicted,
            },
        ],
        None,
    )?;
    println!("plot: {}", plot.display());
    Ok(())
}
