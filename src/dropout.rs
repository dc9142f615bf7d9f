//! Dropout between stacked layers (PyTorch's `dropout` argument): the masks a training forward
//! multiplies each lower layer's output by, drawn on the host so that the CPU and GPU paths
//! drop the same units and a resumed run draws what an uninterrupted one would.

use ndarray::Array3;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::Real;
use crate::config::RnnConfig;

/// One (T, B, D*H) mask for every layer but the last: each entry 0 with probability p, else
/// 1/(1-p), so that the expected output is unchanged (inverted dropout, as PyTorch).
pub fn draw_masks<T: Real>(
    config: &RnnConfig,
    seq: usize,
    batch: usize,
    rng: &mut StdRng,
) -> Vec<Array3<T>> {
    if !config.drops_out() {
        return Vec::new();
    }
    let p = config.dropout as f64;
    let kept = T::from(1.0 / (1.0 - p)).expect("a float");
    let dims = (seq, batch, config.output_size());
    (1..config.num_layers)
        .map(|_| {
            Array3::from_shape_simple_fn(dims, || {
                if rng.random::<f64>() < p {
                    T::zero()
                } else {
                    kept
                }
            })
        })
        .collect()
}

/// The stream of masks of one model, reseeded by the training loop at every step.
#[derive(Debug)]
pub struct MaskStream(StdRng);

impl MaskStream {
    pub fn new(seed: u64) -> Self {
        MaskStream(StdRng::seed_from_u64(seed))
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.0
    }
}
