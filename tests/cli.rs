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
