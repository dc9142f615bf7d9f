//! `torch.nn.Embedding(num_embeddings, embedding_dim, padding_idx)`: a row of the weight per
//! token id, and the scatter-add gradient, in which the padding row gets none.

use ndarray::{Array2, Array3, ArrayD, ArrayView2, ArrayView3, Axis};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::{Result, RnnError, shape_string};

/// weight (num, dim); `padding_idx`: the row that looks up as zeros at init and never learns.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    pub weight: Array2<f32>,
    pub padding_idx: Option<usize>,
}

impl Embedding {
    /// PyTorch's init: N(0, 1) entries, the padding row zeros. Box-Muller on a seeded RNG.
    pub fn new(num: usize, dim: usize, padding_idx: Option<usize>, seed: u64) -> Result<Self> {
        check_padding(padding_idx, num)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut normal = || {
            let u1: f32 = rng.random_range(f32::EPSILON..1.0);
            let u2: f32 = rng.random_range(0.0..1.0);
            (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        };
        let mut weight = Array2::from_shape_simple_fn((num, dim), &mut normal);
        if let Some(p) = padding_idx {
            weight.row_mut(p).fill(0.0);
        }
        Ok(Embedding {
            weight,
            padding_idx,
        })
    }

    /// `{prefix}weight` (num, dim) from `lookup`, as a `state_dict` names it (`prefix` with its
    /// trailing dot, e.g. `"encoder.embedding."`).
    pub fn from_lookup(
        prefix: &str,
        padding_idx: Option<usize>,
        lookup: impl FnOnce(&str) -> Result<Option<ArrayD<f32>>>,
    ) -> Result<Self> {
        let name = format!("{prefix}weight");
        let weight = lookup(&name)?.ok_or_else(|| RnnError::MissingTensor {
            name: name.clone(),
            expected: "(num_embeddings, embedding_dim)".into(),
        })?;
        if weight.ndim() != 2 || weight.is_empty() {
            return Err(RnnError::Shape {
                tensor: name,
                expected: "(num_embeddings, embedding_dim)".into(),
                got: weight.shape().to_vec(),
            });
        }
        crate::params::check_finite_tensor(&name, &weight)?;
        let weight = weight.into_dimensionality().expect("two axes");
        check_padding(padding_idx, weight.nrows())?;
        Ok(Embedding {
            weight,
            padding_idx,
        })
    }

    pub fn num_embeddings(&self) -> usize {
        self.weight.nrows()
    }

    pub fn embedding_dim(&self) -> usize {
        self.weight.ncols()
    }

    /// ids (T, B) (or (B, T): the output follows the ids' layout), each in 0..num -> (T, B, dim).
    pub fn forward(&self, ids: ArrayView2<'_, usize>) -> Result<Array3<f32>> {
        crate::tokens::check_tokens("embedding ids", ids, self.num_embeddings())?;
        let (seq, batch) = ids.dim();
        let mut out = Array3::zeros((seq, batch, self.embedding_dim()));
        for ((t, b), &id) in ids.indexed_iter() {
            out.slice_mut(ndarray::s![t, b, ..])
                .assign(&self.weight.row(id));
        }
        Ok(out)
    }

    /// dL/d weight (num, dim) from ids (T, B) and dL/d output (T, B, dim): each id's rows of
    /// the output gradient summed into its row; the padding row stays zero.
    pub fn backward(
        &self,
        ids: ArrayView2<'_, usize>,
        grad_output: ArrayView3<'_, f32>,
    ) -> Result<Array2<f32>> {
        crate::tokens::check_tokens("embedding ids", ids, self.num_embeddings())?;
        let want = (ids.nrows(), ids.ncols(), self.embedding_dim());
        if grad_output.dim() != want {
            return Err(RnnError::Shape {
                tensor: "embedding grad_output".into(),
                expected: shape_string(&[want.0, want.1, want.2]),
                got: grad_output.shape().to_vec(),
            });
        }
        let mut grad = Array2::zeros(self.weight.raw_dim());
        for ((t, b), &id) in ids.indexed_iter() {
            if Some(id) == self.padding_idx {
                continue;
            }
            let mut row = grad.row_mut(id);
            row += &grad_output.index_axis(Axis(0), t).row(b);
        }
        Ok(grad)
    }
}

fn check_padding(padding_idx: Option<usize>, num: usize) -> Result<()> {
    match padding_idx {
        Some(p) if p >= num => Err(RnnError::Config(format!(
            "padding_idx {p} is outside the {num} embeddings"
        ))),
        _ => Ok(()),
    }
}
