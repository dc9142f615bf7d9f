//! Time-series regression (the seed notes' application): an LSTM reads a look-back window of the
//! airline passengers series and predicts the next month, trained with MSE and Adam. The model
//! works on monthly log-changes, standardised (the series grows and its seasonal swing grows
//! with it, so raw values in the test years lie outside anything seen in training). Reports the
//! test RMSE in thousands of passengers beside the naive last-value forecast, plots prediction
//! vs truth, and saves a checkpoint that `rnn-wgpu run` applies to the CSV.
//!
//!     cargo run --release --example timeseries
//!     cargo run --release -- run --checkpoint runs/timeseries/model.safetensors --input data/airline_passengers.csv

use ndarray::{Array2, Array3};
use rnn_wgpu::nn::mse;
use rnn_wgpu::optim::Adam;
use rnn_wgpu::plot::{Series, write_chart_svg};
use rnn_wgpu::regression::{ColumnTransform, Forecaster, RegressionSpec, Regressor};
use rnn_wgpu::{Mode, RnnError};

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
    let first_test = passengers.len() - TEST_MONTHS; // index of the first test month
    // Month i's input: log(p[i] / p[i-1]), standardised on the training months.
    let change = ColumnTransform::fit("passengers", true, &passengers[..first_test])?;
    let table: Vec<Vec<f64>> = passengers.iter().map(|&p| vec![p]).collect();
    let spec = RegressionSpec {
        mode: Mode::Lstm,
        hidden: 32,
        layers: 1,
        look_back: LOOK_BACK,
        inputs: vec![change.clone()],
        target: change,
        // The months before the test years: `rnn-wgpu eval` scores the test months apart.
        trained_on: Some(RegressionSpec::trained_rows(&table[..first_test])),
    };
    let mut regressor = Regressor::new(spec, 3)?;
    // changes[k]: month k+1's change (month 0 has none).
    let (first_row, changes) = regressor.encode_inputs(&table)?;
    assert_eq!(first_row, 1);

    // Sample k: the LOOK_BACK changes before change k, predicting change k; every target
    // month before the test years.
    let train_targets: Vec<usize> = (LOOK_BACK..first_test - 1).collect();
    let b = train_targets.len();
    let x = Array3::from_shape_fn((LOOK_BACK, b, 1), |(t, i, _)| {
        changes[train_targets[i] - LOOK_BACK + t][0]
    });
    let y = Array2::from_shape_fn((b, 1), |(i, _)| changes[train_targets[i]][0]);
    let mut adam = Adam::new(3e-3);
    for epoch in 1..=150 {
        // One batch of every training window: (T, B, 1).
        let loss = regressor.model.train_step(
            x.view(),
            |prediction| mse(prediction, y.view()),
            &mut adam,
            None,
        )?;
        if epoch % 30 == 0 {
            println!("epoch {epoch:3}  training MSE (standardised log-changes) {loss:.4}");
        }
    }

    // One-step-ahead forecasts, reading the series month by month as `rnn-wgpu run` does;
    // scored on the test months.
    let (mut model_sq, mut naive_sq) = (0.0, 0.0);
    let mut predicted = Vec::new();
    let mut forecaster = Forecaster::new(&regressor);
    for (month, &p) in passengers.iter().enumerate().take(passengers.len() - 1) {
        let next = month + 1;
        let forecast = forecaster.push(vec![p])?;
        if let (Some(forecast), true) = (forecast, next >= first_test) {
            model_sq += (forecast - passengers[next]).powi(2);
            naive_sq += (p - passengers[next]).powi(2);
            predicted.push((next as f64, forecast));
        }
    }
    let (model_rmse, naive_rmse) = (
        (model_sq / TEST_MONTHS as f64).sqrt(),
        (naive_sq / TEST_MONTHS as f64).sqrt(),
    );
    println!(
        "test RMSE over the last {TEST_MONTHS} months: LSTM {model_rmse:.1}, naive last value {naive_rmse:.1} (thousands of passengers)"
    );
    let checkpoint = std::path::Path::new("runs/timeseries/model.safetensors");
    std::fs::create_dir_all("runs/timeseries").map_err(|e| RnnError::File {
        path: "runs/timeseries".into(),
        message: e.to_string(),
    })?;
    regressor.save(checkpoint)?;
    println!("checkpoint: {}", checkpoint.display());
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
