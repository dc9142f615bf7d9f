//! rnn-wgpu: recurrent neural networks (vanilla RNN, LSTM, GRU) with PyTorch's exact conventions,
//! on a fast CPU reference path (and, through wgpu, on any GPU).
//!
//! ```
//! use rnn_wgpu::{Mode, Rnn, RnnConfig};
//! use ndarray::Array3;
//!
//! let config = RnnConfig::new(Mode::Lstm, 8, 16).layers(2);
//! let model = Rnn::<f32>::new(config, 0).unwrap();
//! let input = Array3::<f32>::zeros((5, 3, 8)); // (T, B, I)
//! let out = model.forward(input.view(), None, None).unwrap();
//! assert_eq!(out.output.dim(), (5, 3, 16)); // (T, B, D*H)
//! ```

/// README.md's code blocks, compiled and run as doc tests so that what it shows stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod conventions;
pub mod cpu;
pub mod data;
pub mod dropout;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod interop;
pub mod limits;
pub mod lm;
pub mod lm_optimizer;
pub mod math;
pub mod model;
pub mod nn;
pub mod optim;
pub mod out_dir;
pub mod params;
pub mod parity;
pub mod plot;
mod real;
pub mod regression;
pub mod stream;
pub mod tensor_file;
pub mod tokens;
pub mod train;

pub use backend::Backend;
pub use config::RnnConfig;
pub use conventions::Mode;
pub use error::{Result, RnnError};
pub use model::{OutputGrads, Rnn, RnnBatch, RnnGrads, RnnInput, RnnOutput, SyncState, Tape};
pub use params::{CellParams, RnnParams};
pub use real::Real;
