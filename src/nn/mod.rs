//! Layers around the recurrent stack: the embedding, the linear head and the losses.

pub mod embedding;
pub mod linear;
pub mod loss;
pub mod many_to_one;

pub use embedding::Embedding;
pub use linear::Linear;
pub use loss::{
    CrossEntropyOptions, CrossEntropyOutput, Reduction, cross_entropy, cross_entropy_with, mse,
};
pub use many_to_one::ManyToOne;
