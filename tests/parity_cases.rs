//! PyTorch parity: every reference case in tests/data/parity (the public set) and
//! tests/data/parity/shapes (odd sizes, 3 layers, bidirectional, T=300, B=1, T=1) must match what
//! PyTorch computed, within the case format's tolerance.

mod common;

use std::path::{Path, PathBuf};

use rnn_wgpu::RnnError;
use rnn_wgpu::parity::{Backend, run_case};
use rnn_wgpu::tensor_file::TensorFile;

fn cases(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    paths.sort();
    paths
}

fn kind(path: &Path) -> String {
    TensorFile::read(path)
        .expect("case reads")
        .meta("kind")
        .expect("kind")
        .to_string()
}

fn assert_layer_cases_pass(dir: &str, at_least: usize) {
    assert_layer_cases_pass_on(dir, at_least, Backend::Cpu);
}

fn assert_layer_cases_pass_on(dir: &str, at_least: usize, backend: Backend) {
    let layer_cases: Vec<PathBuf> = cases(dir)
        .into_iter()
        .filter(|p| kind(p) == "layer")
        .collect();
    assert!(
        layer_cases.len() >= at_least,
        "{dir}: found only {} layer cases",
        layer_cases.len()
    );
    for path in layer_cases {
        let report = run_case(&path, backend).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            !report.checks.is_empty(),
            "{}: nothing compared",
            path.display()
        );
        for check in &report.checks {
            assert!(
                check.passed(),
                "{} {}: max_abs_err {:e} > tol {:e} {:?}",
                path.display(),
                check.name,
                check.max_abs_err,
                check.tolerance,
                check.problem
            );
        }
    }
}

#[test]
fn public_layer_cases_match_pytorch() {
    assert_layer_cases_pass("tests/data/parity", 7);
}

#[test]
fn more_shapes_match_pytorch() {
    assert_layer_cases_pass("tests/data/parity/shapes", 9);
}

#[test]
fn public_layer_cases_match_pytorch_on_gpu() {
    if common::gpu().is_some() {
        assert_layer_cases_pass_on("tests/data/parity", 7, Backend::Gpu);
    }
}

#[test]
fn more_shapes_match_pytorch_on_gpu() {
    if common::gpu().is_some() {
        assert_layer_cases_pass_on("tests/data/parity/shapes", 9, Backend::Gpu);
    }
}

#[test]
fn every_expected_tensor_of_a_case_is_compared() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parity/lstm_bidir.safetensors");
    let report = run_case(&path, Backend::Cpu).expect("runs");
    let file = TensorFile::read(&path).expect("reads");
    let expected = file.names().filter(|n| n.starts_with("expected.")).count();
    // output, h_n, c_n, grad.input, grad.h0, grad.c0 and 16 parameter gradients
    assert_eq!(report.checks.len(), expected);
    assert_eq!(expected, 22);
}

#[test]
fn train_cases_say_not_supported_yet() {
    let train: Vec<PathBuf> = cases("tests/data/parity")
        .into_iter()
        .filter(|p| kind(p) == "train")
        .collect();
    assert_eq!(train.len(), 2);
    for path in train {
        let err = run_case(&path, Backend::Cpu).expect_err("training is not there yet");
        assert!(matches!(err, RnnError::Unsupported(_)), "{err}");
        assert!(err.to_string().contains("not supported yet"));
    }
}
