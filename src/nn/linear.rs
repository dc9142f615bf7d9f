//! `torch.nn.Linear`: y = x W^T + b over rows.

use ndarray::{Array1, Array2, ArrayD, ArrayView2, Axis};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::{Result, RnnError, shape_string};
use crate::math::matmul::matmul;

/// weight (out, in), bias (out)
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub weight: Array2<f32>,
    pub bias: Array1<f32>,
}

/// Gradients of a `Linear`, same shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearGrads {
    pub weight: Array2<f32>,
    pub bias: Array1<f32>,
}

impl LinearGrads {
    /// weight and bias gradients, mutable, in the order of `Linear::slices_mut`.
    pub fn slices_mut(&mut self) -> [&mut [f32]; 2] {
        [
            self.weight.as_slice_mut().expect("standard layout"),
            self.bias.as_slice_mut().expect("standard layout"),
        ]
    }
}

impl Linear {
    /// PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias; both sizes at least 1.
    pub fn new(inputs: usize, outputs: usize, seed: u64) -> Result<Self> {
        for (what, size) in [
            ("Linear in_features", inputs),
            ("Linear out_features", outputs),
        ] {
            if size == 0 {
                return Err(RnnError::ZeroSize { what: what.into() });
            }
        }
        crate::limits::checked_product("Linear weight", &[inputs, outputs])?;
        let mut rng = StdRng::seed_from_u64(seed);
        let bound = 1.0 / (inputs as f32).sqrt();
        let mut draw = || rng.random_range(-bound..bound);
        Ok(Linear {
            weight: Array2::from_shape_simple_fn((outputs, inputs), &mut draw),
            bias: Array1::from_shape_simple_fn(outputs, &mut draw),
        })
    }

    /// `{prefix}.weight` (out, in) and `{prefix}.bias` (out) from `lookup`, as PyTorch names
    /// them in a `state_dict`; a missing tensor or a wrong shape is an error naming it.
    pub fn from_lookup(
        prefix: &str,
        (inputs, outputs): (usize, usize),
        mut lookup: impl FnMut(&str) -> Result<Option<ArrayD<f32>>>,
    ) -> Result<Self> {
        let mut tensor = |name: String, shape: &[usize]| -> Result<ArrayD<f32>> {
            let t = lookup(&name)?.ok_or_else(|| RnnError::MissingTensor {
                name: name.clone(),
                expected: shape_string(shape),
            })?;
            if t.shape() != shape {
                return Err(RnnError::Shape {
                    tensor: name,
                    expected: shape_string(shape),
                    got: t.shape().to_vec(),
                });
            }
            crate::params::check_finite_tensor(&name, &t)?;
            Ok(t)
        };
        let weight = tensor(format!("{prefix}.weight"), &[outputs, inputs])?;
        let bias = tensor(format!("{prefix}.bias"), &[outputs])?;
        Ok(Linear {
            weight: weight.into_dimensionality().expect("checked"),
            bias: bias.into_dimensionality().expect("checked"),
        })
    }

    /// weight and bias data, mutable, in `named_parameters()` order (for the optimizer).
    pub fn slices_mut(&mut self) -> [&mut [f32]; 2] {
        [
            self.weight.as_slice_mut().expect("standard layout"),
            self.bias.as_slice_mut().expect("standard layout"),
        ]
    }

    /// x (N, in) -> (N, out)
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.check(x, None)?;
        let mut y = Array2::zeros((x.nrows(), self.weight.nrows()));
        y.assign(&self.bias);
        matmul(y.view_mut(), x, self.weight.t(), true);
        Ok(y)
    }

    /// From x (N, in) and dL/dy (N, out): parameter gradients and dL/dx (N, in).
    pub fn backward(
        &self,
        x: ArrayView2<'_, f32>,
        grad_y: ArrayView2<'_, f32>,
    ) -> Result<(LinearGrads, Array2<f32>)> {
        self.check(x, Some(grad_y))?;
        let mut weight = Array2::zeros(self.weight.raw_dim());
        matmul(weight.view_mut(), grad_y.t(), x, false);
        let mut grad_x = Array2::zeros(x.raw_dim());
        matmul(grad_x.view_mut(), grad_y, self.weight.view(), false);
        Ok((
            LinearGrads {
                weight,
                bias: grad_y.sum_axis(Axis(0)),
            },
            grad_x,
        ))
    }

    /// The layer's own shapes (its public fields may have been replaced) and x (N, in), and
    /// grad_y (N, out) where given, against them.
    fn check(&self, x: ArrayView2<'_, f32>, grad_y: Option<ArrayView2<'_, f32>>) -> Result<()> {
        let (outputs, inputs) = self.weight.dim();
        let wrong = |tensor: &str, expected: String, got: &[usize]| {
            Err(RnnError::Shape {
                tensor: tensor.into(),
                expected,
                got: got.to_vec(),
            })
        };
        if self.bias.len() != outputs {
            return wrong(
                "Linear bias",
                format!("({outputs}), one per weight row"),
                self.bias.shape(),
            );
        }
        if x.ncols() != inputs {
            return wrong("Linear input", format!("(N, {inputs})"), x.shape());
        }
        match grad_y {
            Some(g) if g.dim() != (x.nrows(), outputs) => wrong(
                "Linear output gradient",
                format!("({}, {outputs})", x.nrows()),
                g.shape(),
            ),
            _ => Ok(()),
        }
    }
}
