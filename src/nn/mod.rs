//! Layers around the recurrent stack: the embedding, the linear head, the losses, and the
//! seed notes' structures built on the stack (many to one, one to many, output feedback).

pub mod embedding;
pub mod linear;
pub mod loss;
pub mod many_to_one;
pub mod one_to_many;
pub mod output_feedback;
mod stack_and_head;
pub mod text_classifier;

pub use embedding::Embedding;
pub use linear::Linear;
pub use loss::{
    CrossEntropyOptions, CrossEntropyOutput, Reduction, cross_entropy, cross_entropy_with, mse,
};
pub use many_to_one::ManyToOne;
pub use one_to_many::{Feed, OneToMany};
pub use output_feedback::OutputFeedback;
pub use text_classifier::TextClassifier;
