//! The PyTorch parity harness: runs a reference case (format `rnn-parity/1`, see
//! `tests/data/parity/README.md`) and compares every tensor with what PyTorch computed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, Ix3};

use crate::config::RnnConfig;
use crate::conventions::Mode;
use crate::error::{Result, RnnError, shape_string};
use crate::lm::CharLm;
use crate::lm_optimizer::LmOptimizer;
use crate::model::{OutputGrads, Rnn};
use crate::optim::Adam;
use crate::params::RnnParams;
use crate::tensor_file::{TensorFile, write_f32};

pub use crate::backend::Backend;

/// One compared tensor.
#[derive(Clone, Debug)]
pub struct TensorCheck {
    /// Key without the `expected.` prefix, e.g. `grad.weight_ih_l0`.
    pub name: String,
    pub max_abs_err: f64,
    pub tolerance: f64,
    /// Why the comparison could not be made (shape mismatch, not computed).
    pub problem: Option<String>,
}

impl TensorCheck {
    pub fn passed(&self) -> bool {
        self.problem.is_none() && self.max_abs_err <= self.tolerance
    }
}

/// The outcome of one case.
#[derive(Clone, Debug)]
pub struct CaseReport {
    pub path: PathBuf,
    pub kind: String,
    pub mode: Mode,
    pub checks: Vec<TensorCheck>,
    /// Everything computed, under the expected keys without their prefix.
    pub computed: Vec<(String, ArrayD<f32>)>,
}

impl CaseReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(TensorCheck::passed)
    }

    /// Writes what was computed, for inspection beside the case.
    pub fn write(&self, path: &Path) -> Result<()> {
        let tensors: Vec<_> = self
            .computed
            .iter()
            .map(|(k, v)| (k.clone(), v.view()))
            .collect();
        let meta = HashMap::from([
            ("format".to_string(), "rnn-parity-result/1".to_string()),
            ("case".to_string(), self.path.display().to_string()),
        ]);
        write_f32(path, &tensors, meta)
    }
}

/// The tolerance of the case format: 2e-4 * max(1, max|expected|), and ten times that for
/// `final.*` parameters, which several Adam steps amplify (its update is ~lr * sign(g) early on).
pub fn tolerance(name: &str, expected: &ArrayD<f32>) -> f64 {
    let scale = expected.iter().fold(1.0f64, |m, v| m.max(v.abs() as f64));
    let rel = if name.starts_with("final.") {
        2e-3
    } else {
        2e-4
    };
    rel * scale
}

/// Runs one case file on `backend`.
pub fn run_case(path: &Path, backend: Backend) -> Result<CaseReport> {
    let file = TensorFile::read(path)?;
    let format = file.meta("format")?;
    if format != "rnn-parity/1" {
        return Err(RnnError::File {
            path: path.into(),
            message: format!("format '{format}', expected 'rnn-parity/1'"),
        });
    }
    let mode: Mode = file.meta("mode")?.parse()?;
    let kind = file.meta("kind")?.to_string();
    let computed = match kind.as_str() {
        "layer" => run_layer_case(&file, mode, backend)?,
        "train" => run_train_case(&file, mode, backend)?,
        other => {
            return Err(RnnError::File {
                path: path.into(),
                message: format!("unknown kind '{other}'"),
            });
        }
    };
    let checks = compare(&file, &computed)?;
    Ok(CaseReport {
        path: path.into(),
        kind,
        mode,
        checks,
        computed,
    })
}

/// Every `expected.*` tensor of the file against what was computed, and every computed tensor
/// against its `expected.*`: a case cannot pass by leaving a tensor out, by naming one nothing
/// computes, or by holding NaN or infinity on either side.
fn compare(file: &TensorFile, computed: &[(String, ArrayD<f32>)]) -> Result<Vec<TensorCheck>> {
    let by_name: HashMap<&str, &ArrayD<f32>> =
        computed.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut checks = Vec::new();
    for key in file.names().filter(|n| n.starts_with("expected.")) {
        let name = key.trim_start_matches("expected.").to_string();
        let expected = file.f32(key)?;
        let tolerance = tolerance(&name, &expected);
        let (max_abs_err, problem) = match by_name.get(name.as_str()) {
            None => (
                f64::INFINITY,
                Some("unknown: this kind of case computes no such tensor".to_string()),
            ),
            Some(got) => compare_tensor(got, &expected),
        };
        checks.push(TensorCheck {
            name,
            max_abs_err,
            tolerance,
            problem,
        });
    }
    for (name, _) in computed {
        if !file.contains(&format!("expected.{name}")) {
            checks.push(TensorCheck {
                name: name.clone(),
                max_abs_err: f64::INFINITY,
                tolerance: 0.0,
                problem: Some(format!("missing: the case has no expected.{name}")),
            });
        }
    }
    Ok(checks)
}

/// max |got - expected|, or why no such number can pass: another shape, or a value that is
/// not finite (`f64::max` would drop a NaN, so finiteness is checked first).
fn compare_tensor(got: &ArrayD<f32>, expected: &ArrayD<f32>) -> (f64, Option<String>) {
    if got.shape() != expected.shape() {
        let problem = format!(
            "shape {} but expected {}",
            shape_string(got.shape()),
            shape_string(expected.shape())
        );
        return (f64::INFINITY, Some(problem));
    }
    for (side, tensor) in [("the result", got), ("the expected tensor", expected)] {
        if let Some((index, value)) = tensor.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            let problem = format!("{value} in {side} at flat index {index}");
            return (f64::NAN, Some(problem));
        }
    }
    let err = got
        .iter()
        .zip(expected)
        .map(|(g, e)| (*g as f64 - *e as f64).abs())
        .fold(0.0, f64::max);
    (err, None)
}

fn tensor3(file: &TensorFile, name: &str) -> Result<ndarray::Array3<f32>> {
    let t = file.f32(name)?;
    let got = t.shape().to_vec();
    t.into_dimensionality::<Ix3>().map_err(|_| RnnError::Shape {
        tensor: name.into(),
        expected: "3 dimensions".into(),
        got,
    })
}

fn optional3(file: &TensorFile, name: &str) -> Result<Option<ndarray::Array3<f32>>> {
    file.contains(name).then(|| tensor3(file, name)).transpose()
}

/// One `torch.nn.RNN/LSTM/GRU` forward and backward.
fn run_layer_case(
    file: &TensorFile,
    mode: Mode,
    backend: Backend,
) -> Result<Vec<(String, ArrayD<f32>)>> {
    let config = RnnConfig {
        mode,
        input_size: file.meta_parsed("input_size")?,
        hidden_size: file.meta_parsed("hidden_size")?,
        num_layers: file.meta_parsed("num_layers")?,
        bidirectional: file.meta_parsed("bidirectional")?,
        bias: file.contains("bias_ih_l0"),
        batch_first: false,
        dropout: 0.0,
    };
    let params = RnnParams::from_lookup(&config, |name| {
        file.contains(name).then(|| file.f32(name)).transpose()
    })?;
    let model = Rnn::from_params(config.clone(), params)?.with_backend(backend)?;
    let input = tensor3(file, "input")?;
    let (seq, batch): (usize, usize) = (file.meta_parsed("seq_len")?, file.meta_parsed("batch")?);
    if input.dim().0 != seq || input.dim().1 != batch {
        return Err(RnnError::Shape {
            tensor: "input".into(),
            expected: format!("({seq}, {batch}, {}) from the metadata", config.input_size),
            got: input.shape().to_vec(),
        });
    }
    let (h0, c0) = (optional3(file, "h0")?, optional3(file, "c0")?);
    let (g_out, g_h, g_c) = (
        optional3(file, "grad_output")?,
        optional3(file, "grad_h_n")?,
        optional3(file, "grad_c_n")?,
    );
    let upstream = OutputGrads {
        output: g_out.as_ref().map(|a| a.view()),
        h_n: g_h.as_ref().map(|a| a.view()),
        c_n: g_c.as_ref().map(|a| a.view()),
    };
    let (output, grads) = model.forward_backward(
        input.view(),
        h0.as_ref().map(|a| a.view()),
        c0.as_ref().map(|a| a.view()),
        upstream,
        true,
    )?;

    let mut computed = vec![
        ("output".to_string(), output.output.into_dyn()),
        ("h_n".to_string(), output.h_n.into_dyn()),
        ("grad.h0".to_string(), grads.h0.into_dyn()),
    ];
    computed.extend(output.c_n.map(|c| ("c_n".to_string(), c.into_dyn())));
    computed.extend(grads.c0.map(|c| ("grad.c0".to_string(), c.into_dyn())));
    computed.extend(
        grads
            .input
            .map(|x| ("grad.input".to_string(), x.into_dyn())),
    );
    for (name, tensor) in grads.params.named(&config) {
        computed.push((format!("grad.{name}"), tensor.to_owned()));
    }
    Ok(computed)
}

/// Several Adam steps of the character language model, each from a zero state, with
/// global-norm clipping: loss and gradient norm per step, parameters after the last.
fn run_train_case(
    file: &TensorFile,
    mode: Mode,
    backend: Backend,
) -> Result<Vec<(String, ArrayD<f32>)>> {
    let vocab: usize = file.meta_parsed("vocab_size")?;
    let config = RnnConfig::new(mode, vocab, file.meta_parsed("hidden_size")?)
        .layers(file.meta_parsed("num_layers")?);
    for (key, want) in [("optimizer", "adam"), ("loss", "mean_cross_entropy")] {
        let got = file.meta(key)?;
        if got != want {
            return Err(RnnError::Unsupported(format!(
                "train cases with {key}={got}"
            )));
        }
    }
    let mut lm = CharLm::from_lookup(config, |name| {
        file.contains(name).then(|| file.f32(name)).transpose()
    })?;
    lm.rnn = lm.rnn.with_backend(backend)?;
    let mut adam = Adam::new(file.meta_parsed("lr")?);
    adam.beta1 = file.meta_parsed("beta1")?;
    adam.beta2 = file.meta_parsed("beta2")?;
    adam.eps = file.meta_parsed("eps")?;
    let clip: f32 = file.meta_parsed("clip_grad_norm")?;
    let mut optimizer = LmOptimizer::new(&lm, adam, Some(clip))?;
    let tokens = file.i64("tokens")?;
    let steps: usize = file.meta_parsed("steps")?;
    let (seq, batch): (usize, usize) = (file.meta_parsed("seq_len")?, file.meta_parsed("batch")?);
    // seq + 1 from a file's seq_len may overflow: then no tensor can have that shape.
    let want = seq.checked_add(1).map(|window| [steps, window, batch]);
    if want.is_none_or(|want| tokens.shape() != want) {
        return Err(RnnError::Shape {
            tensor: "tokens".into(),
            expected: format!("({steps}, seq_len + 1 = {seq} + 1, {batch})"),
            got: tokens.shape().to_vec(),
        });
    }
    let tokens = tokens.mapv(|t| usize::try_from(t).unwrap_or(usize::MAX));
    let (mut losses, mut norms) = (Vec::new(), Vec::new());
    for step in 0..steps {
        let window = tokens.index_axis(ndarray::Axis(0), step);
        let window = window
            .into_dimensionality::<ndarray::Ix2>()
            .expect("checked above");
        let inputs = window.slice(ndarray::s![..seq, ..]);
        let targets = window.slice(ndarray::s![1.., ..]);
        let result = optimizer.step(&mut lm, inputs, targets, None)?;
        norms.push(result.grad_norm);
        losses.push(result.loss);
    }
    // On the GPU the parameters were stepped on the device: read them back.
    lm.rnn.sync_params()?;
    let mut computed = vec![
        ("loss".to_string(), ndarray::Array1::from(losses).into_dyn()),
        (
            "grad_norm".to_string(),
            ndarray::Array1::from(norms).into_dyn(),
        ),
    ];
    for (name, tensor) in lm.named() {
        computed.push((format!("final.{name}"), tensor.to_owned()));
    }
    Ok(computed)
}
