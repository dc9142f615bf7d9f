//! The element type a model computes in: f32 (the product, and the only one the GPU kernels
//! take) and f64 (gradient checks on the CPU). Math only: the engines build on it.

use std::fmt::{Debug, Display};

use ndarray::LinalgScalar;
use num_traits::Float;

use crate::math::activations;

/// A float a model computes in, with its vectorised activations.
pub trait Real: LinalgScalar + Float + Send + Sync + Debug + Display + Default + 'static {
    /// Name for messages and file dtypes.
    const NAME: &'static str;

    /// 1 / (1 + exp(-x)); inlined so that loops over it vectorise.
    fn sigmoid_of(x: Self) -> Self;
    /// tanh(x); inlined so that loops over it vectorise.
    fn tanh_of(x: Self) -> Self;
}

impl Real for f32 {
    const NAME: &'static str = "f32";

    #[inline(always)]
    fn sigmoid_of(x: f32) -> f32 {
        activations::sigmoid_f32(x)
    }
    #[inline(always)]
    fn tanh_of(x: f32) -> f32 {
        activations::tanh_f32(x)
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";

    // f64 serves gradient checks, where the exact libm functions matter more than speed.
    #[inline(always)]
    fn sigmoid_of(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }
    #[inline(always)]
    fn tanh_of(x: f64) -> f64 {
        x.tanh()
    }
}
