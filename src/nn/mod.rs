//! Layers around the recurrent stack: the linear head and the losses.

pub mod linear;
pub mod loss;
pub mod many_to_one;

pub use linear::Linear;
pub use loss::{cross_entropy, mse};
pub use many_to_one::ManyToOne;
