//! PyTorch parity: every reference case in tests/data/parity (the public set) and
//! tests/data/parity/shapes (odd sizes, 3 layers, bidirectional, T=300, B=1, T=1) must match what
//! PyTorch computed, within the case format's tolerance.

mod common;

use std::path::{Path, PathBuf};

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

/// Every case of `kind` in `dir` (at least `at_least` of them) passes on `backend`.
fn assert_cases_pass(dir: &str, case_kind: &str, at_least: usize, backend: Backend) {
    let selected: Vec<PathBuf> = cases(dir)
        .into_iter()
        .filter(|p| kind(p) == case_kind)
        .collect();
    assert!(
        selected.len() >= at_least,
        "{dir}: found only {} {case_kind} cases",
        selected.len()
    );
    for path in selected {
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
    assert_cases_pass("tests/data/parity", "layer", 7, Backend::Cpu);
}

#[test]
fn public_train_cases_match_pytorch() {
    assert_cases_pass("tests/data/parity", "train", 2, Backend::Cpu);
}

#[test]
fn more_shapes_match_pytorch() {
    assert_cases_pass("tests/data/parity/shapes", "layer", 9, Backend::Cpu);
    assert_cases_pass("tests/data/parity/shapes", "train", 4, Backend::Cpu);
}

#[test]
fn public_cases_match_pytorch_on_gpu() {
    if common::gpu().is_some() {
        assert_cases_pass("tests/data/parity", "layer", 7, Backend::Gpu);
        assert_cases_pass("tests/data/parity", "train", 2, Backend::Gpu);
    }
}

#[test]
fn more_shapes_match_pytorch_on_gpu() {
    if common::gpu().is_some() {
        assert_cases_pass("tests/data/parity/shapes", "layer", 9, Backend::Gpu);
        assert_cases_pass("tests/data/parity/shapes", "train", 4, Backend::Gpu);
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
fn a_result_that_disagrees_with_pytorch_fails() {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parity/rnn_tanh_small.safetensors");
    let file = TensorFile::read(&source).unwrap();
    // The same case with one expected value moved by 1e-3, five times the tolerance.
    let mut tensors = Vec::new();
    for name in file.names() {
        let mut t = file.f32(name).unwrap();
        if name == "expected.h_n" {
            t[[0, 1, 2]] += 1e-3;
        }
        tensors.push((name.to_string(), t));
    }
    let views: Vec<_> = tensors.iter().map(|(n, t)| (n.clone(), t.view())).collect();
    let path = std::env::temp_dir().join(format!(
        "rnn-wgpu-disagree-{}.safetensors",
        std::process::id()
    ));
    rnn_wgpu::tensor_file::write_f32(&path, &views, file.metadata().clone()).unwrap();
    let report = run_case(&path, Backend::Cpu).unwrap();
    std::fs::remove_file(&path).unwrap();
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(failed, ["h_n"]);
    assert!(!report.passed());
}
