//! The command line: exit status, one-line errors, and what it prints.

mod common;

use std::process::{Command, Output};

fn rnn_wgpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnn-wgpu"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const LAYER_CASES: [&str; 7] = [
    "tests/data/parity/rnn_tanh_small.safetensors",
    "tests/data/parity/rnn_relu_small.safetensors",
    "tests/data/parity/lstm_2layer.safetensors",
    "tests/data/parity/gru_2layer.safetensors",
    "tests/data/parity/lstm_bidir.safetensors",
    "tests/data/parity/gru_bidir.safetensors",
    "tests/data/parity/lstm_medium.safetensors",
];

#[test]
fn parity_passes_every_public_layer_case() {
    let mut args = vec!["parity", "--backend", "cpu"];
    args.extend(LAYER_CASES);
    let out = rnn_wgpu(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.contains("FAIL"));
    assert!(stdout.contains("PASS grad.weight_hh_l1_reverse"));
    assert!(
        stdout.trim_end().ends_with("7 of 7 cases passed"),
        "{stdout}"
    );
}

#[test]
fn parity_passes_the_train_cases() {
    let out = rnn_wgpu(&[
        "parity",
        "tests/data/parity/train_gru_charlm.safetensors",
        "tests/data/parity/train_lstm_charlm.safetensors",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("PASS final.head.weight"), "{stdout}");
    assert!(stdout.trim_end().ends_with("2 of 2 cases passed"));
}

#[test]
fn parity_on_a_file_that_is_not_a_case_fails_that_case() {
    let out = rnn_wgpu(&["parity", LAYER_CASES[0], "README.md"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("README.md: FAIL: "), "{stdout}");
    assert!(stdout.contains("1 of 2 cases passed"));
}

#[test]
fn parity_on_gpu_passes_every_public_layer_case() {
    if common::gpu().is_none() {
        return;
    }
    let mut args = vec!["parity", "--backend", "gpu"];
    args.extend(LAYER_CASES);
    let out = rnn_wgpu(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.trim_end().ends_with("7 of 7 cases passed"),
        "{stdout}"
    );
}

#[test]
fn parity_out_writes_the_computed_tensors() {
    let path =
        std::env::temp_dir().join(format!("rnn-wgpu-cli-{}.safetensors", std::process::id()));
    let out = rnn_wgpu(&["parity", LAYER_CASES[2], "--out", path.to_str().unwrap()]);
    assert!(out.status.success());
    let file = rnn_wgpu::tensor_file::TensorFile::read(&path).expect("written");
    for key in [
        "output",
        "h_n",
        "c_n",
        "grad.input",
        "grad.h0",
        "grad.c0",
        "grad.weight_ih_l1",
    ] {
        assert!(file.contains(key), "{key} missing");
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn bad_input_prints_one_line_and_exits_nonzero() {
    let out = rnn_wgpu(&["bench", "--seq", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: --seq must be at least 1, got 0\n"
    );

    let out = rnn_wgpu(&["bench", "--hidden", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: hidden_size must be at least 1, got 0\n"
    );
}

#[test]
fn bench_json_has_the_peer_script_fields() {
    let out = rnn_wgpu(&[
        "bench", "--cell", "gru", "--input", "8", "--hidden", "16", "--layers", "2", "--batch",
        "2", "--seq", "5", "--runs", "3", "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object");
    for field in [
        "cell",
        "input",
        "hidden",
        "layers",
        "batch",
        "seq",
        "forward_ms",
        "train_ms",
        "runs",
    ] {
        assert!(v.get(field).is_some(), "{field} missing in {v}");
    }
    assert_eq!(v["cell"], "gru");
    assert!(v["train_ms"].as_f64().unwrap() > 0.0);
    assert!(v["train_gflops"].as_f64().unwrap() > 0.0);
}

#[test]
fn train_then_sample() {
    let dir = std::env::temp_dir().join(format!("rnn-wgpu-cli-train-{}", std::process::id()));
    let data = dir.join("text.txt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        &data,
        "to be or not to be, that is the question. ".repeat(40),
    )
    .unwrap();
    let out = rnn_wgpu(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--hidden",
        "16",
        "--layers",
        "1",
        "--seq",
        "8",
        "--batch",
        "4",
        "--steps",
        "5",
        "--backend",
        "cpu",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let last = stdout.trim_end().lines().last().unwrap();
    let val: f32 = last
        .strip_prefix("val_loss=")
        .expect("last line is val_loss=")
        .parse()
        .unwrap();
    assert!(val.is_finite() && val > 0.0);
    assert!(dir.join("checkpoint.safetensors").exists() && dir.join("loss.svg").exists());

    let checkpoint = dir.join("checkpoint.safetensors");
    let out = rnn_wgpu(&[
        "sample",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--prime",
        "to be",
        "--len",
        "20",
    ]);
    let sampled = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        sampled.starts_with("to be") && sampled.trim_end().chars().count() >= 20,
        "{sampled:?}"
    );

    let out = rnn_wgpu(&[
        "sample",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--prime",
        "ROMEO",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .starts_with("error: invalid configuration: character 'R' is not in the vocabulary"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_closed_pipe_ends_the_output_without_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rnn-wgpu"))
        .args([
            "parity",
            "--backend",
            "cpu",
            "tests/data/parity/lstm_medium.safetensors",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    // Close the reading end before the program writes.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("stderr");
    child.wait().expect("exits");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A regression checkpoint whose forecasts follow by hand: a ReLU RNN with one unit,
/// h_t = relu(v_t + 0.5 h_{t-1}) from zero at each 2-row window, head y = h, target w = 2 y + 10.
fn write_relu_regressor(path: &std::path::Path) {
    use ndarray::{Array1, Array2};
    use rnn_wgpu::nn::{Linear, ManyToOne};
    use rnn_wgpu::regression::{ColumnTransform, RegressionSpec, Regressor};
    use rnn_wgpu::{Mode, Rnn, RnnParams};
    let plain = |column: &str, mean: f64, std: f64| ColumnTransform {
        column: column.into(),
        log_change: false,
        mean,
        std,
    };
    let spec = RegressionSpec {
        mode: Mode::RnnRelu,
        hidden: 1,
        layers: 1,
        look_back: 2,
        inputs: vec![plain("v", 0.0, 1.0)],
        target: plain("w", 10.0, 2.0),
    };
    let config = spec.rnn_config();
    let mut params = RnnParams::<f32>::zeros(&config);
    params.cells[0].weight_ih = Array2::from_elem((1, 1), 1.0);
    params.cells[0].weight_hh = Array2::from_elem((1, 1), 0.5);
    let head = Linear {
        weight: Array2::from_elem((1, 1), 1.0),
        bias: Array1::zeros(1),
    };
    let model = ManyToOne::new(Rnn::from_params(config, params).unwrap(), head).unwrap();
    Regressor { spec, model }.save(path).unwrap();
}

#[test]
fn run_forecasts_csv_rows_with_a_regression_checkpoint() {
    let dir = std::env::temp_dir().join(format!("rnn-wgpu-run-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("model.safetensors");
    write_relu_regressor(&checkpoint);
    // Columns in another order than the model's, plus one it does not read.
    let csv = dir.join("rows.csv");
    std::fs::write(&csv, "w,note,v\n1,a,1\n1,b,2\n16,c,-3\n10,d,4\n18,e,5\n").unwrap();
    let (ck, input) = (checkpoint.to_str().unwrap(), csv.to_str().unwrap());
    for backend in ["cpu", "gpu"] {
        if backend == "gpu" && common::gpu().is_none() {
            continue;
        }
        let out = rnn_wgpu(&[
            "run",
            "--checkpoint",
            ck,
            "--input",
            input,
            "--backend",
            backend,
        ]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines[0], "row,forecast_w");
        // After rows 1..4: y = relu(2 + 0.5), relu(-3 + 1), relu(4 + 0), relu(5 + 2) -> w = 2y + 10.
        let forecasts: Vec<(usize, f64)> = lines[1..5]
            .iter()
            .map(|l| {
                let (row, value) = l.split_once(',').unwrap();
                (row.parse().unwrap(), value.parse().unwrap())
            })
            .collect();
        for ((row, got), (want_row, want)) in
            forecasts
                .iter()
                .zip([(2, 15.0), (3, 10.0), (4, 18.0), (5, 24.0)])
        {
            assert_eq!(*row, want_row, "{backend}: {stdout}");
            assert!(
                (got - want).abs() < 1e-5,
                "{backend} row {row}: {got} vs {want}"
            );
        }
        // Scored on rows 2..4: errors 1, 0, 0; naive (last w) errors 15, 6, 8.
        let want = format!(
            "rmse={:.4} over 3 forecasts (naive last value: {:.4})",
            (1.0f64 / 3.0).sqrt(),
            (325.0f64 / 3.0).sqrt()
        );
        assert_eq!(lines[5], want, "{backend}");
    }

    // A CSV without a column the model reads: one line naming it, non-zero exit.
    std::fs::write(&csv, "v,x\n1,2\n").unwrap();
    let out = rnn_wgpu(&["run", "--checkpoint", ck, "--input", input]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no column 'w'"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
