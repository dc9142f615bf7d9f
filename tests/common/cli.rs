//! The `rnn-wgpu` binary as the CLI tests run it, and the small training run several of them
//! start from.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn rnn_wgpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnn-wgpu"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A short training text in `dir`; its vocabulary is the 15 characters ` ,.abehinoqrstu`.
pub fn write_text(dir: &Path) -> PathBuf {
    let data = dir.join("text.txt");
    std::fs::write(
        &data,
        "to be or not to be, that is the question. ".repeat(30),
    )
    .unwrap();
    data
}

/// `train` on the CPU over `data` into `out` with windows of 8 x 2 characters; `model` gives
/// the size and length of the run (`--hidden`, `--layers`, `--steps`, ...).
pub fn train_small(data: &Path, out: &Path, model: &[&str]) -> Output {
    let (data, out) = (data.to_str().unwrap(), out.to_str().unwrap());
    let common = [
        "train",
        "--data",
        data,
        "--backend",
        "cpu",
        "--seq",
        "8",
        "--batch",
        "2",
    ];
    rnn_wgpu(&[&common[..], &["--out", out], model].concat())
}
