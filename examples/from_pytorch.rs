//! A model trained in PyTorch, run here. The input files come from this Python (also in
//! `examples/data/make_from_pytorch.py`):
//!
//! ```python
//! import torch
//! from safetensors.torch import save_file
//! torch.manual_seed(0)
//! lstm = torch.nn.LSTM(input_size=5, hidden_size=8, num_layers=2, batch_first=True, bidirectional=True)
//! save_file(lstm.state_dict(), "examples/data/lstm_state_dict.safetensors")
//! x = torch.randn(3, 7, 5)  # (B, T, I)
//! with torch.no_grad():
//!     y, (h, c) = lstm(x)
//! save_file({"input": x, "output": y.contiguous(), "h_n": h, "c_n": c}, "examples/data/lstm_io.safetensors")
//! ```
//!
//!     cargo run --release --example from_pytorch -- [STATE_DICT.safetensors]

use std::path::PathBuf;

use ndarray::Ix3;
use rnn_wgpu::Mode;
use rnn_wgpu::interop::{load_state_dict, save_state_dict};
use rnn_wgpu::tensor_file::TensorFile;

fn main() -> rnn_wgpu::Result<()> {
    let data = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data"));
    let state_dict = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or(data.join("lstm_state_dict.safetensors"));
    // The shape (input, hidden, layers, directions, bias) is read from the tensors.
    let lstm = load_state_dict(&state_dict, Mode::Lstm, "", true)?;
    let c = lstm.config();
    println!(
        "loaded {}: {} I={} H={} L={} bidirectional={}",
        state_dict.display(),
        c.mode,
        c.input_size,
        c.hidden_size,
        c.num_layers,
        c.bidirectional
    );

    let io = TensorFile::read(&data.join("lstm_io.safetensors"))?;
    let three = |name: &str| {
        io.f32(name).map(|t| {
            t.into_dimensionality::<Ix3>()
                .expect("3-D in the example file")
        })
    };
    let out = lstm.forward(three("input")?.view(), None, None)?;
    for (name, ours) in [
        ("output", &out.output),
        ("h_n", &out.h_n),
        ("c_n", out.c_n.as_ref().expect("LSTM")),
    ] {
        let theirs = three(name)?;
        let err = ours
            .iter()
            .zip(theirs.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!(
            "{name:6} {:?}: max |rnn-wgpu - PyTorch| = {err:.2e}",
            ours.shape()
        );
    }
    // And back: torch.nn.LSTM(...).load_state_dict(safetensors.torch.load_file(path)) takes this.
    let back = std::env::temp_dir().join("lstm_from_rnn_wgpu.safetensors");
    save_state_dict(&lstm, &back, "")?;
    println!("saved for PyTorch: {}", back.display());
    Ok(())
}
