//! Layers around the recurrent stack: the linear head and the losses.

pub mod linear;
pub mod loss;

pub use linear::Linear;
pub use loss::{cross_entropy, mse};
