//! Host math that both the CPU engine and the layers above the stack (`nn`) compute with: packed
//! matrix products, runtime SIMD dispatch, and f32 activations that vectorise.

pub mod activations;
pub mod matmul;
pub mod simd;

pub use activations::exp_in_place;
