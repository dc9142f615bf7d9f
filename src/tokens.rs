//! Token-id inputs: checks, and the one-hot rows they stand for where a path needs them built
//! (the GPU backend; the CPU path gathers columns of W_ih instead).

use ndarray::{Array3, ArrayView2};

use crate::Real;
use crate::error::{Result, RnnError};

/// Every id in 0..`vocab`, else an error naming the first one outside and where it is.
/// tokens (T, B)
pub fn check_tokens(name: &str, tokens: ArrayView2<'_, usize>, vocab: usize) -> Result<()> {
    match tokens.indexed_iter().find(|&(_, &id)| id >= vocab) {
        None => Ok(()),
        Some(((t, b), &id)) => Err(RnnError::Config(format!(
            "{name}: token {id} at ({t}, {b}) is outside the vocabulary of {vocab}"
        ))),
    }
}

/// tokens (T, B) -> (T, B, vocab) one-hot rows.
pub fn one_hot<T: Real>(tokens: ArrayView2<'_, usize>, vocab: usize) -> Result<Array3<T>> {
    check_tokens("tokens", tokens, vocab)?;
    Ok(one_hot_checked(tokens, vocab))
}

/// `one_hot` of ids already checked to be in 0..`vocab`.
pub(crate) fn one_hot_checked<T: Real>(tokens: ArrayView2<'_, usize>, vocab: usize) -> Array3<T> {
    let (seq, batch) = tokens.dim();
    let mut x = Array3::zeros((seq, batch, vocab));
    for ((t, b), &id) in tokens.indexed_iter() {
        x[[t, b, id]] = T::one();
    }
    x
}
