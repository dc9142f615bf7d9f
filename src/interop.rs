//! PyTorch interop: a `state_dict` of `torch.nn.RNN/LSTM/GRU` saved with
//! `safetensors.torch.save_file` loads as an `Rnn` (the shape is read from the tensors), and an
//! `Rnn` saves the same way, so weights round-trip both ways.

use std::collections::HashMap;
use std::path::Path;

use crate::config::RnnConfig;
use crate::conventions::{Mode, ParamKind, param_name};
use crate::error::{Result, RnnError, shape_string};
use crate::model::Rnn;
use crate::nn::{Embedding, Linear};
use crate::params::RnnParams;
use crate::tensor_file::{TensorFile, write_f32};

/// How a stack is read out of a state_dict file.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions<'a> {
    /// What precedes the parameter names when the stack was a submodule (`"encoder.rnn."`), ""
    /// otherwise. Tensors under the prefix must all be the stack's; others belong to other
    /// layers and are left alone.
    pub prefix: &'a str,
    pub batch_first: bool,
    /// As `load_state_dict(strict=True)` on the whole file: any tensor that is not the stack's
    /// is an error, outside the prefix too.
    pub strict: bool,
}

/// Loads `path` as a `mode` stack under `prefix` (see `LoadOptions`); the file's other tensors
/// are left alone. Every expected name must be there with its shape; errors list what was
/// expected.
pub fn load_state_dict(
    path: &Path,
    mode: Mode,
    prefix: &str,
    batch_first: bool,
) -> Result<Rnn<f32>> {
    let options = LoadOptions {
        prefix,
        batch_first,
        strict: false,
    };
    load_state_dict_with(&TensorFile::read(path)?, mode, options)
}

/// `load_state_dict` from a file already read, with every option.
pub fn load_state_dict_with(
    file: &TensorFile,
    mode: Mode,
    options: LoadOptions<'_>,
) -> Result<Rnn<f32>> {
    let LoadOptions {
        prefix,
        batch_first,
        strict,
    } = options;
    let path = file.path();
    if file.contains(&format!("{prefix}weight_hr_l0")) {
        return Err(RnnError::Unsupported(format!(
            "LSTM projections ({prefix}weight_hr_l0: torch.nn.LSTM with proj_size)"
        )));
    }
    let shape_of = |name: &str| -> Result<Option<Vec<usize>>> {
        let key = format!("{prefix}{name}");
        file.contains(&key)
            .then(|| file.f32(&key).map(|t| t.shape().to_vec()))
            .transpose()
    };
    let first_hh = param_name(ParamKind::WeightHh, 0, false);
    let first_ih = param_name(ParamKind::WeightIh, 0, false);
    let (Some(hh), Some(ih)) = (shape_of(&first_hh)?, shape_of(&first_ih)?) else {
        return Err(RnnError::File {
            path: path.into(),
            message: format!(
                "no {prefix}{first_ih} / {prefix}{first_hh}: not a state_dict of torch.nn.RNN/LSTM/GRU (names: {})",
                names(file)
            ),
        });
    };
    let hidden = hh.get(1).copied().unwrap_or(0);
    if hh.len() != 2 || ih.len() != 2 || hidden == 0 || hh[0] != mode.gate_count() * hidden {
        return Err(RnnError::Shape {
            tensor: format!("{prefix}{first_hh}"),
            expected: format!("({} * H, H) for {mode}", mode.gate_count()),
            got: hh,
        });
    }
    let mut layers = 0;
    while shape_of(&param_name(ParamKind::WeightIh, layers, false))?.is_some() {
        layers += 1;
    }
    let config = RnnConfig {
        mode,
        input_size: ih[1],
        hidden_size: hidden,
        num_layers: layers,
        bidirectional: shape_of(&param_name(ParamKind::WeightIh, 0, true))?.is_some(),
        bias: shape_of(&param_name(ParamKind::BiasIh, 0, false))?.is_some(),
        batch_first,
        // A state dict does not say; set it on the config to train with dropout.
        dropout: 0.0,
    };
    let specs = config.param_specs();
    let expected = || {
        specs
            .iter()
            .map(|s| format!("{prefix}{} {}", s.name, shape_string(&s.shape)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let known: Vec<String> = specs
        .iter()
        .map(|s| format!("{prefix}{}", s.name))
        .collect();
    let in_scope = |name: &str| strict || name.starts_with(prefix);
    if let Some(extra) = file
        .names()
        .find(|n| in_scope(n) && !known.iter().any(|k| k == n))
    {
        return Err(RnnError::UnexpectedTensor {
            name: extra.to_string(),
            known: expected(),
        });
    }
    let params = RnnParams::from_lookup(&config, |name| {
        let key = format!("{prefix}{name}");
        file.contains(&key).then(|| file.f32(&key)).transpose()
    })
    .map_err(|e| match e {
        RnnError::MissingTensor { name, .. } => RnnError::MissingTensor {
            name: format!("{prefix}{name}"),
            expected: expected(),
        },
        other => other,
    })?;
    Rnn::from_params(config, params)
}

/// Saves the parameters under PyTorch's names (after `prefix`), as
/// `safetensors.torch.save_file(module.state_dict(), path)` would.
pub fn save_state_dict(rnn: &Rnn<f32>, path: &Path, prefix: &str) -> Result<()> {
    StateDict::default().rnn(prefix, rnn).save(path)
}

/// A whole model's state_dict being put together, each layer's tensors under PyTorch's names
/// after its prefix (`"encoder.rnn."`, `"head."`), written as `safetensors.torch.save_file`
/// writes `model.state_dict()`.
#[derive(Clone, Debug, Default)]
pub struct StateDict<'a> {
    tensors: Vec<(String, ndarray::ArrayViewD<'a, f32>)>,
}

impl<'a> StateDict<'a> {
    /// A recurrent stack: `{prefix}weight_ih_l0`, ...
    pub fn rnn(mut self, prefix: &str, rnn: &'a Rnn<f32>) -> Self {
        let named = rnn.params().named(rnn.config());
        self.tensors.extend(
            named
                .into_iter()
                .map(|(name, t)| (format!("{prefix}{name}"), t)),
        );
        self
    }

    /// A `Linear`: `{prefix}weight` (out, in) and `{prefix}bias` (out).
    pub fn linear(mut self, prefix: &str, linear: &'a Linear) -> Self {
        self.tensors
            .push((format!("{prefix}weight"), linear.weight.view().into_dyn()));
        self.tensors
            .push((format!("{prefix}bias"), linear.bias.view().into_dyn()));
        self
    }

    /// An `Embedding`: `{prefix}weight` (num, dim).
    pub fn embedding(mut self, prefix: &str, embedding: &'a Embedding) -> Self {
        self.tensors.push((
            format!("{prefix}weight"),
            embedding.weight.view().into_dyn(),
        ));
        self
    }

    /// Writes the file (atomically); two layers under one name are an error.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut names: Vec<&str> = self.tensors.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(RnnError::Config(format!(
                "two tensors named '{}' in one state_dict (give each layer its own prefix)",
                pair[0]
            )));
        }
        write_f32(
            path,
            &self.tensors,
            HashMap::from([("format".to_string(), "pt".to_string())]),
        )
    }
}

fn names(file: &TensorFile) -> String {
    file.names().collect::<Vec<_>>().join(", ")
}

/// A recurrent stack found in a state_dict file by its parameter names.
#[derive(Clone, Debug, PartialEq)]
pub struct FoundStack {
    /// What precedes `weight_ih_l0` (`"encoder.rnn."`, or "").
    pub prefix: String,
    /// What the gate count says: LSTM (4H rows), GRU (3H) or an Elman RNN (H; tanh and relu
    /// look the same on file, so `RnnTanh` stands for both); `None` for another count.
    pub mode: Option<Mode>,
    pub input_size: usize,
    pub hidden_size: usize,
    /// `proj_size` of an LSTM with projections (`weight_hr_l0`), 0 without.
    pub proj_size: usize,
    pub num_layers: usize,
    pub bidirectional: bool,
    pub bias: bool,
}

/// Every recurrent stack in `file`, found by its `weight_ih_l0`, in name order.
pub fn find_stacks(file: &TensorFile) -> Vec<FoundStack> {
    let mut names: Vec<&str> = file.names().collect();
    names.sort_unstable();
    let shape = |name: String| file.shape(&name).ok().map(<[usize]>::to_vec);
    let found = |prefix: &str| -> Option<FoundStack> {
        let ih = shape(format!("{prefix}weight_ih_l0"))?;
        let hh = shape(format!("{prefix}weight_hh_l0"))?;
        let (&[gate_rows, input_size], &[_, width]) = (ih.as_slice(), hh.as_slice()) else {
            return None;
        };
        // With projections W_hh is (4H, P) and W_hr (P, H).
        let (hidden_size, proj_size) = match shape(format!("{prefix}weight_hr_l0")).as_deref() {
            Some(&[p, h]) => (h, p),
            _ => (width, 0),
        };
        let mode = [Mode::Lstm, Mode::Gru, Mode::RnnTanh]
            .into_iter()
            .find(|m| gate_rows == m.gate_count() * hidden_size);
        let has = |name: &str| file.contains(&format!("{prefix}{name}"));
        Some(FoundStack {
            prefix: prefix.to_string(),
            mode,
            input_size,
            hidden_size,
            proj_size,
            num_layers: (0..)
                .take_while(|k| has(&format!("weight_ih_l{k}")))
                .count(),
            bidirectional: has("weight_ih_l0_reverse"),
            bias: has("bias_ih_l0"),
        })
    };
    names
        .iter()
        .filter_map(|name| name.strip_suffix("weight_ih_l0"))
        .filter_map(found)
        .collect()
}

/// Writes a stack and its linear head under PyTorch's names (`rnn.` and `head.`), as
/// `safetensors.torch.save_file({**rnn.state_dict() prefixed, **head.state_dict() prefixed})`
/// would; returns the lines of PyTorch that rebuild and load them.
pub fn export_with_head(rnn: &Rnn<f32>, head: &Linear, path: &Path) -> Result<String> {
    StateDict::default()
        .rnn("rnn.", rnn)
        .linear("head.", head)
        .save(path)?;
    Ok(pytorch_loader(rnn.config(), head, path))
}

/// The PyTorch that rebuilds the modules `export_with_head` wrote and loads their weights.
fn pytorch_loader(config: &RnnConfig, head: &Linear, path: &Path) -> String {
    let module = match config.mode {
        Mode::RnnTanh | Mode::RnnRelu => "RNN",
        Mode::Lstm => "LSTM",
        Mode::Gru => "GRU",
    };
    let dropout = if config.dropout > 0.0 {
        format!(", dropout={}", config.dropout)
    } else {
        String::new()
    };
    let nonlinearity = match config.mode {
        Mode::RnnTanh => ", nonlinearity=\"tanh\"",
        Mode::RnnRelu => ", nonlinearity=\"relu\"",
        Mode::Lstm | Mode::Gru => "",
    };
    let py_bool = |b: bool| if b { "True" } else { "False" };
    format!(
        "import torch\n\
         from safetensors.torch import load_file\n\
         rnn = torch.nn.{module}({}, {}, num_layers={}{nonlinearity}{dropout}, bias={}, batch_first={}, bidirectional={})\n\
         head = torch.nn.Linear({}, {})\n\
         state = load_file({:?})\n\
         rnn.load_state_dict({{k[4:]: v for k, v in state.items() if k.startswith(\"rnn.\")}})\n\
         head.load_state_dict({{k[5:]: v for k, v in state.items() if k.startswith(\"head.\")}})\n",
        config.input_size,
        config.hidden_size,
        config.num_layers,
        py_bool(config.bias),
        py_bool(config.batch_first),
        py_bool(config.bidirectional),
        head.weight.ncols(),
        head.weight.nrows(),
        path.display().to_string(),
    )
}
