//! The CPU reference path on ndarray: PyTorch's mathematics exactly, and fast enough to be the
//! CPU backend. Every GPU result is checked against it.

mod direction;
mod engine;
mod gru_cell;
mod lstm_cell;
mod rnn_cell;
mod stack;
mod step_product;
pub(crate) mod team;
mod workspace;

pub use engine::CpuEngine;
pub use stack::StackTape;
pub use workspace::Workspace;

/// Runs `work` on a thread of rayon's global pool, so that the matrix products it starts split
/// across the pool's threads with this one among them. Called from outside the pool, a product
/// would otherwise wake every worker while the calling thread also stays runnable: one thread
/// more than there are cores, which costs a context switch per product on a small machine.
pub fn on_thread_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::join(work, || ()).0
}
