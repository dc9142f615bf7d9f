//! The scalar types the CPU path runs in: f32 (the product) and f64 (gradient checks).

use std::fmt::{Debug, Display};

use ndarray::LinalgScalar;
use num_traits::Float;

use super::activations;

/// A float the CPU path computes in, with its vectorised activations.
pub trait Real: LinalgScalar + Float + Send + Sync + Debug + Display + Default + 'static {
    /// Name for messages and file dtypes.
    const NAME: &'static str;

    /// xs <- 1 / (1 + exp(-xs))
    fn sigmoid_in_place(xs: &mut [Self]);
    /// xs <- tanh(xs)
    fn tanh_in_place(xs: &mut [Self]);
    /// out <- tanh(xs)
    fn tanh_into(xs: &[Self], out: &mut [Self]);
}

impl Real for f32 {
    const NAME: &'static str = "f32";

    fn sigmoid_in_place(xs: &mut [f32]) {
        activations::sigmoid_f32(xs);
    }
    fn tanh_in_place(xs: &mut [f32]) {
        activations::tanh_f32(xs);
    }
    fn tanh_into(xs: &[f32], out: &mut [f32]) {
        out.copy_from_slice(xs);
        activations::tanh_f32(out);
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";

    // f64 serves gradient checks, where the exact libm functions matter more than speed.
    fn sigmoid_in_place(xs: &mut [f64]) {
        for x in xs {
            *x = 1.0 / (1.0 + (-*x).exp());
        }
    }
    fn tanh_in_place(xs: &mut [f64]) {
        for x in xs {
            *x = x.tanh();
        }
    }
    fn tanh_into(xs: &[f64], out: &mut [f64]) {
        for (o, x) in out.iter_mut().zip(xs) {
            *o = x.tanh();
        }
    }
}
