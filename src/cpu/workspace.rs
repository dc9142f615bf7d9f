//! Reuse of the large per-call buffers (gate caches, states) across calls. Fresh multi-megabyte
//! allocations come from the kernel as untouched pages, and faulting them in cost about a third of
//! an LSTM forward pass at H=256 before this existed.

use std::sync::Mutex;

use ndarray::{Array, Dimension, ShapeBuilder};

use crate::Real;

/// Keep at most this many idle buffers: enough for every tape of a deep bidirectional stack.
const MAX_IDLE: usize = 64;

/// A pool of idle buffers, shared by the calls on one model.
#[derive(Debug, Default)]
pub struct Workspace<T> {
    idle: Mutex<Vec<Vec<T>>>,
}

impl<T: Real> Workspace<T> {
    pub fn new() -> Self {
        Workspace {
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A zeroed array, in the smallest idle buffer that fits (or a new one).
    pub fn zeros<D: Dimension, Sh: ShapeBuilder<Dim = D>>(&self, shape: Sh) -> Array<T, D> {
        let shape = shape.into_shape_with_order();
        let len = shape.size();
        let mut buffer = self.take(len);
        buffer.clear();
        buffer.resize(len, T::zero());
        Array::from_shape_vec(shape, buffer).expect("buffer length equals the shape's size")
    }

    /// An array holding whatever its buffer held before (zeros where the buffer is new): for
    /// buffers the caller writes whole before reading, which skips a pass of zero-filling.
    pub fn overwritable<D: Dimension, Sh: ShapeBuilder<Dim = D>>(&self, shape: Sh) -> Array<T, D> {
        let shape = shape.into_shape_with_order();
        let len = shape.size();
        let mut buffer = self.take(len);
        buffer.truncate(len);
        buffer.resize(len, T::zero());
        Array::from_shape_vec(shape, buffer).expect("buffer length equals the shape's size")
    }

    fn take(&self, len: usize) -> Vec<T> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let best = idle
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => idle.swap_remove(i),
            None => Vec::with_capacity(len),
        }
    }

    /// Gives an array's buffer back for later calls.
    pub fn recycle<D: Dimension>(&self, array: Array<T, D>) {
        let (buffer, _) = array.into_raw_vec_and_offset();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(buffer);
        }
    }
}

impl<T> Clone for Workspace<T> {
    /// A clone starts with an empty pool: buffers are a cache, not state.
    fn clone(&self) -> Self {
        Workspace {
            idle: Mutex::new(Vec::new()),
        }
    }
}
