//! Losses with their gradients: softmax cross-entropy (mean, or with PyTorch's weight,
//! ignore_index and reduction) and mean squared error.

use ndarray::{Array2, ArrayView2};

use crate::error::{Result, RnnError, shape_string};
use crate::math::exp_in_place;

/// Mean over rows of -log softmax(logits)`[target]`, as `torch.nn.functional.cross_entropy`.
/// logits (N, V), targets (N); returns the loss and dL/dlogits (N, V).
pub fn cross_entropy(logits: ArrayView2<'_, f32>, targets: &[usize]) -> Result<(f32, Array2<f32>)> {
    let out = cross_entropy_with(logits, targets, &CrossEntropyOptions::default())?;
    Ok((out.loss[0], out.grad))
}

/// How a loss reduces its per-row values, as PyTorch's `reduction=`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The (weighted) mean: the sum of `w[y_i] l_i` over the sum of `w[y_i]`, ignored rows left
    /// out.
    #[default]
    Mean,
    Sum,
    /// One value per row (0 for an ignored row).
    None,
}

/// `torch.nn.functional.cross_entropy`'s options.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CrossEntropyOptions {
    /// (V): a weight per class, multiplying each row's loss by its target's.
    pub weight: Option<Vec<f32>>,
    /// Rows with this target count for nothing (PyTorch's `ignore_index`; it may lie outside
    /// 0..V, as its default -100 does).
    pub ignore_index: Option<usize>,
    pub reduction: Reduction,
}

/// What `cross_entropy_with` returns.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropyOutput {
    /// One value for `Mean` and `Sum`, one per row for `None`.
    pub loss: Vec<f32>,
    /// (N, V): the gradient of the loss, summed over the rows' values for `None`.
    pub grad: Array2<f32>,
}

/// Softmax cross-entropy with PyTorch's options. logits (N, V), targets (N).
pub fn cross_entropy_with(
    logits: ArrayView2<'_, f32>,
    targets: &[usize],
    options: &CrossEntropyOptions,
) -> Result<CrossEntropyOutput> {
    let (n, vocab) = logits.dim();
    if targets.len() != n {
        return Err(RnnError::Shape {
            tensor: "targets".into(),
            expected: format!("({n})"),
            got: vec![targets.len()],
        });
    }
    if let Some(weight) = &options.weight
        && weight.len() != vocab
    {
        return Err(RnnError::Shape {
            tensor: "cross_entropy weight".into(),
            expected: format!("({vocab}), one per class"),
            got: vec![weight.len()],
        });
    }
    let ignored = |t: usize| options.ignore_index == Some(t);
    if let Some(&bad) = targets.iter().find(|&&t| t >= vocab && !ignored(t)) {
        return Err(RnnError::Config(format!(
            "target {bad} is outside the vocabulary of {vocab}"
        )));
    }
    let class_weight = |t: usize| options.weight.as_ref().map_or(1.0, |w| w[t]);
    let total_weight: f64 = targets
        .iter()
        .filter(|&&t| !ignored(t))
        .map(|&t| class_weight(t) as f64)
        .sum();
    if options.reduction == Reduction::Mean && total_weight == 0.0 {
        // PyTorch returns NaN here (0 / 0); a loss of NaN would poison the step silently.
        return Err(RnnError::Config(
            "cross_entropy: every row is ignored (or weighs 0), so the mean is 0 / 0".into(),
        ));
    }
    let divisor = match options.reduction {
        Reduction::Mean => total_weight as f32,
        Reduction::Sum | Reduction::None => 1.0,
    };
    let mut grad = Array2::zeros((n, vocab));
    let mut losses = vec![0.0f32; n];
    for (((row, mut g), &target), loss) in logits
        .outer_iter()
        .zip(grad.outer_iter_mut())
        .zip(targets)
        .zip(&mut losses)
    {
        if ignored(target) {
            continue;
        }
        let w = class_weight(target);
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let g = g.as_slice_mut().expect("standard layout");
        g.iter_mut().zip(row).for_each(|(g, &v)| *g = v - max);
        exp_in_place(g);
        let sum: f32 = g.iter().sum();
        // -log_softmax[target] = (max - l_target) + ln(sum): no cancellation of a large max
        // against the target's logit (logits near 1e9 would lose ln(sum) entirely).
        *loss = w * ((max - row[target]) + sum.ln());
        // w (softmax - one_hot), over the divisor
        let scale = w / (sum * divisor);
        g.iter_mut().for_each(|v| *v *= scale);
        g[target] -= w / divisor;
    }
    let loss = match options.reduction {
        Reduction::None => losses,
        Reduction::Sum => vec![losses.iter().map(|&l| l as f64).sum::<f64>() as f32],
        Reduction::Mean => {
            vec![(losses.iter().map(|&l| l as f64).sum::<f64>() / total_weight) as f32]
        }
    };
    Ok(CrossEntropyOutput { loss, grad })
}

/// Mean over every entry of (prediction - target)^2; returns the loss and dL/dprediction.
pub fn mse(
    prediction: ArrayView2<'_, f32>,
    target: ArrayView2<'_, f32>,
) -> Result<(f32, Array2<f32>)> {
    if prediction.dim() != target.dim() {
        return Err(RnnError::Shape {
            tensor: "target".into(),
            expected: shape_string(prediction.shape()),
            got: target.shape().to_vec(),
        });
    }
    let count = prediction.len() as f32;
    let diff = &prediction - &target;
    let loss = diff.iter().map(|d| (d * d) as f64).sum::<f64>() as f32 / count;
    Ok((loss, diff * (2.0 / count)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// Equal logits near 1e9: the loss is ln(V) exactly (V = 58: 4.0604430), where
    /// `max + ln(sum) - logit` in f32 lost ln(sum) to the rounding of 1e9 (0 or 8).
    #[test]
    fn large_equal_logits_lose_nothing_to_cancellation() {
        let logits = Array2::from_elem((2, 58), 1.0e9f32);
        let (loss, grad) = cross_entropy(logits.view(), &[3, 57]).unwrap();
        assert!((loss - 58f32.ln()).abs() < 1e-6, "{loss}");
        // softmax is 1/58 everywhere; the target's entry less 1, over the 2 rows.
        assert!((grad[[0, 0]] - 1.0 / 58.0 / 2.0).abs() < 1e-7);
        assert!((grad[[1, 57]] - (1.0 / 58.0 - 1.0) / 2.0).abs() < 1e-7);
    }

    /// Against values worked out by hand: log-sum-exp of (1, 2, 3) is 3.40760596.
    #[test]
    fn cross_entropy_matches_the_formula() {
        let logits = array![[1.0f32, 2.0, 3.0], [0.0, 0.0, 0.0]];
        let (loss, grad) = cross_entropy(logits.view(), &[2, 0]).unwrap();
        let want = ((3.407_606 - 3.0) + 3f64.ln()) / 2.0;
        assert!((loss as f64 - want).abs() < 1e-6, "{loss} vs {want}");
        // softmax(1,2,3) = (0.09003, 0.24473, 0.66524); minus one-hot at 2; over 2 rows
        assert!((grad[[0, 2]] - (0.665_240_9 - 1.0) / 2.0).abs() < 1e-6);
        assert!((grad[[1, 1]] - 1.0 / 6.0).abs() < 1e-6);
    }

    #[test]
    fn mse_and_its_gradient() {
        let (loss, grad) = mse(array![[1.0f32, 3.0]].view(), array![[0.0f32, 1.0]].view()).unwrap();
        assert_eq!(loss, 2.5);
        assert_eq!(grad, array![[1.0f32, 2.0]]);
    }
}
