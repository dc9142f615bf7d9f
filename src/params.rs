//! Parameters (and parameter gradients) of a recurrent stack, held per layer and direction under
//! PyTorch's names and shapes.

use ndarray::{Array1, Array2, ArrayD, ArrayViewD, Ix1, Ix2};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::Real;
use crate::config::{ParamSpec, RnnConfig};
use crate::conventions::{ParamKind, init_bound, param_name};
use crate::error::{Result, RnnError, shape_string};

/// The parameters of one layer in one direction.
#[derive(Clone, Debug, PartialEq)]
pub struct CellParams<T> {
    /// (G*H, in)
    pub weight_ih: Array2<T>,
    /// (G*H, H)
    pub weight_hh: Array2<T>,
    /// (G*H), absent when the stack has `bias = false`
    pub bias_ih: Option<Array1<T>>,
    /// (G*H)
    pub bias_hh: Option<Array1<T>>,
}

/// Every cell's parameters, indexed by `layer * D + direction`.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnParams<T> {
    pub cells: Vec<CellParams<T>>,
}

impl<T: Real> RnnParams<T> {
    /// All zeros: the starting point of gradient accumulation.
    pub fn zeros(config: &RnnConfig) -> Self {
        Self::filled(config, T::zero)
    }

    /// PyTorch's default initialisation U(-1/sqrt(H), 1/sqrt(H)), reproducible from `seed`.
    pub fn init(config: &RnnConfig, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let bound = init_bound(config.hidden_size);
        Self::filled(config, || {
            num_traits::cast(rng.random_range(-bound..bound)).expect("f64 fits every Real")
        })
    }

    fn filled(config: &RnnConfig, mut value: impl FnMut() -> T) -> Self {
        let (gh, h) = (config.gate_rows(), config.hidden_size);
        let mut cells = Vec::new();
        for layer in 0..config.num_layers {
            let input = config.layer_input_size(layer);
            for _ in 0..config.directions() {
                let mut bias = || {
                    config
                        .bias
                        .then(|| Array1::from_shape_simple_fn(gh, &mut value))
                };
                let (bias_ih, bias_hh) = (bias(), bias());
                cells.push(CellParams {
                    weight_ih: Array2::from_shape_simple_fn((gh, input), &mut value),
                    weight_hh: Array2::from_shape_simple_fn((gh, h), &mut value),
                    bias_ih,
                    bias_hh,
                });
            }
        }
        RnnParams { cells }
    }

    /// The cell of `layer` in `direction` (0 forward, 1 reverse).
    pub fn cell(&self, config: &RnnConfig, layer: usize, direction: usize) -> &CellParams<T> {
        &self.cells[layer * config.directions() + direction]
    }

    /// One parameter as an n-d view, `None` for a bias of a bias-free stack.
    pub fn tensor(&self, config: &RnnConfig, spec: &ParamSpec) -> Option<ArrayViewD<'_, T>> {
        let cell = self.cell(config, spec.layer, spec.direction);
        match spec.kind {
            ParamKind::WeightIh => Some(cell.weight_ih.view().into_dyn()),
            ParamKind::WeightHh => Some(cell.weight_hh.view().into_dyn()),
            ParamKind::BiasIh => cell.bias_ih.as_ref().map(|b| b.view().into_dyn()),
            ParamKind::BiasHh => cell.bias_hh.as_ref().map(|b| b.view().into_dyn()),
        }
    }

    /// Every parameter under its PyTorch name, in `named_parameters()` order.
    pub fn named(&self, config: &RnnConfig) -> Vec<(String, ArrayViewD<'_, T>)> {
        config
            .param_specs()
            .into_iter()
            .filter_map(|spec| self.tensor(config, &spec).map(|t| (spec.name, t)))
            .collect()
    }

    /// Builds the parameters from PyTorch-named tensors, checking that every expected name is there
    /// with its shape and finite values. Names `lookup` does not know are the caller's business
    /// (a file may hold more). Nothing is allocated beyond the tensors `lookup` returns.
    pub fn from_lookup(
        config: &RnnConfig,
        mut lookup: impl FnMut(&str) -> Result<Option<ArrayD<T>>>,
    ) -> Result<Self> {
        config.validate()?;
        let mut cells = Vec::new();
        let mut cell: [Option<ArrayD<T>>; 4] = Default::default();
        for spec in config.param_specs_iter() {
            let tensor = lookup(&spec.name)?.ok_or_else(|| RnnError::MissingTensor {
                name: spec.name.clone(),
                expected: shape_string(&spec.shape),
            })?;
            if tensor.shape() != spec.shape.as_slice() {
                return Err(RnnError::Shape {
                    tensor: spec.name.clone(),
                    expected: shape_string(&spec.shape),
                    got: tensor.shape().to_vec(),
                });
            }
            check_finite_tensor(&spec.name, &tensor)?;
            cell[spec.kind as usize] = Some(tensor);
            // The specs list each cell's tensors together, its last one last.
            let last = if config.bias {
                ParamKind::BiasHh
            } else {
                ParamKind::WeightHh
            };
            if spec.kind == last {
                let [w_ih, w_hh, b_ih, b_hh] = std::mem::take(&mut cell);
                cells.push(CellParams {
                    weight_ih: into_2d(w_ih.expect("listed first")),
                    weight_hh: into_2d(w_hh.expect("listed second")),
                    bias_ih: b_ih.map(into_1d),
                    bias_hh: b_hh.map(into_1d),
                });
            }
        }
        Ok(RnnParams { cells })
    }

    /// Every tensor's data in `named_parameters()` order (weight_ih, weight_hh, bias_ih, bias_hh
    /// per layer and direction).
    pub fn slices(&self) -> Vec<&[T]> {
        let mut out = Vec::new();
        for cell in &self.cells {
            out.push(cell.weight_ih.as_slice().expect("standard layout"));
            out.push(cell.weight_hh.as_slice().expect("standard layout"));
            out.extend(
                cell.bias_ih
                    .iter()
                    .map(|b| b.as_slice().expect("standard layout")),
            );
            out.extend(
                cell.bias_hh
                    .iter()
                    .map(|b| b.as_slice().expect("standard layout")),
            );
        }
        out
    }

    /// `slices`, mutable.
    pub fn slices_mut(&mut self) -> Vec<&mut [T]> {
        let mut out = Vec::new();
        for cell in &mut self.cells {
            out.push(cell.weight_ih.as_slice_mut().expect("standard layout"));
            out.push(cell.weight_hh.as_slice_mut().expect("standard layout"));
            out.extend(
                cell.bias_ih
                    .iter_mut()
                    .map(|b| b.as_slice_mut().expect("standard layout")),
            );
            out.extend(
                cell.bias_hh
                    .iter_mut()
                    .map(|b| b.as_slice_mut().expect("standard layout")),
            );
        }
        out
    }

    /// Every entry set to zero (as `optimizer.zero_grad()` for gradients).
    pub fn zero(&mut self) {
        for slice in self.slices_mut() {
            slice.fill(T::zero());
        }
    }

    /// Adds `other` entry by entry (summing the gradients of two backwards); the two must have
    /// the same tensors and shapes.
    pub fn add(&mut self, other: &RnnParams<T>) -> Result<()> {
        let theirs = other.slices();
        let mine = self.slices_mut();
        let lens = |s: &[&[T]]| s.iter().map(|t| t.len()).collect::<Vec<_>>();
        if mine.len() != theirs.len() || mine.iter().zip(&theirs).any(|(a, b)| a.len() != b.len()) {
            return Err(RnnError::Shape {
                tensor: "parameters added".into(),
                expected: format!("{} tensors like these", mine.len()),
                got: lens(&theirs),
            });
        }
        for (a, b) in mine.into_iter().zip(theirs) {
            a.iter_mut().zip(b).for_each(|(a, &b)| *a = *a + b);
        }
        Ok(())
    }

    /// Multiplies every entry by `factor`.
    pub fn scale(&mut self, factor: T) {
        for slice in self.slices_mut() {
            slice.iter_mut().for_each(|v| *v = *v * factor);
        }
    }

    /// The L2 norm over every entry, as `clip_grad_norm_` measures it.
    pub fn norm(&self) -> f64 {
        self.sum_of_squares().sqrt()
    }

    /// Sum of squares of every entry, in f64 (for global-norm clipping and tests).
    pub fn sum_of_squares(&self) -> f64 {
        let mut total = 0.0;
        for cell in &self.cells {
            let biases = cell.bias_ih.iter().chain(cell.bias_hh.iter());
            for v in cell.weight_ih.iter().chain(cell.weight_hh.iter()) {
                total += v.to_f64().unwrap_or(f64::NAN).powi(2);
            }
            for b in biases {
                total += b
                    .iter()
                    .map(|v| v.to_f64().unwrap_or(f64::NAN).powi(2))
                    .sum::<f64>();
            }
        }
        total
    }
}

fn into_2d<T>(tensor: ArrayD<T>) -> Array2<T> {
    tensor
        .into_dimensionality::<Ix2>()
        .expect("shape checked against its spec")
}

fn into_1d<T>(tensor: ArrayD<T>) -> Array1<T> {
    tensor
        .into_dimensionality::<Ix1>()
        .expect("shape checked against its spec")
}

/// Whether `params` has the cells and shapes `config` asks for: checked when a model is made
/// from parameters and again before each forward and backward, since `Rnn::params_mut` hands
/// out the tensors to replace. Allocates nothing unless it finds a mismatch.
pub fn check_shapes<T>(config: &RnnConfig, params: &RnnParams<T>) -> Result<()> {
    let want_cells = config.num_layers * config.directions();
    let has_biases = |c: &CellParams<T>| {
        c.bias_ih.is_some() == config.bias && c.bias_hh.is_some() == config.bias
    };
    if params.cells.len() != want_cells || !params.cells.iter().all(has_biases) {
        let tensors: usize = params
            .cells
            .iter()
            .map(|c| 2 + usize::from(c.bias_ih.is_some()) + usize::from(c.bias_hh.is_some()))
            .sum();
        let biases = if config.bias { 4 } else { 2 };
        return Err(RnnError::Config(format!(
            "parameters hold {tensors} tensors in {} cells, the config needs {} in {want_cells}",
            params.cells.len(),
            biases * want_cells,
        )));
    }
    for (index, cell) in params.cells.iter().enumerate() {
        let (layer, reverse) = (
            index / config.directions(),
            index % config.directions() == 1,
        );
        let shapes = [
            (ParamKind::WeightIh, Some(cell.weight_ih.shape())),
            (ParamKind::WeightHh, Some(cell.weight_hh.shape())),
            (ParamKind::BiasIh, cell.bias_ih.as_ref().map(|b| b.shape())),
            (ParamKind::BiasHh, cell.bias_hh.as_ref().map(|b| b.shape())),
        ];
        for (kind, got) in shapes {
            let Some(got) = got else { continue };
            let want = config.param_shape(kind, layer);
            if got != want.as_slice() {
                return Err(RnnError::Shape {
                    tensor: param_name(kind, layer, reverse),
                    expected: shape_string(&want),
                    got: got.to_vec(),
                });
            }
        }
    }
    Ok(())
}

/// NaN or infinity in a loaded tensor poisons every result computed from it: refused with its
/// index.
pub fn check_finite_tensor<T: Real>(name: &str, tensor: &ArrayD<T>) -> Result<()> {
    check_finite_with(name, tensor.view(), |_| {
        format!("in a {} tensor", shape_string(tensor.shape()))
    })
}

/// The one finiteness check of tensors: the first NaN or infinity of `tensor` is an error
/// naming `name`, the index, and `position(index)` (the same index in words).
pub(crate) fn check_finite_with<T: Real>(
    name: &str,
    tensor: ArrayViewD<'_, T>,
    position: impl FnOnce(&[usize]) -> String,
) -> Result<()> {
    // Every forward's input passes here: the plain scan first, the indexed one (slow over a
    // dynamic dimension) only to name what it found.
    if tensor.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    let Some((index, value)) = tensor.indexed_iter().find(|(_, v)| !v.is_finite()) else {
        return Ok(());
    };
    let index = ndarray::Dimension::slice(&index).to_vec();
    Err(RnnError::NonFinite {
        tensor: name.to_string(),
        position: position(&index),
        index,
        value: value.to_f64().unwrap_or(f64::NAN),
    })
}
