//! PyTorch interop: a `state_dict` of `torch.nn.RNN/LSTM/GRU` saved with
//! `safetensors.torch.save_file` loads as an `Rnn` (the shape is read from the tensors), and an
//! `Rnn` saves the same way, so weights round-trip both ways.

use std::collections::HashMap;
use std::path::Path;

use crate::config::RnnConfig;
use crate::conventions::{Mode, ParamKind, param_name};
use crate::error::{Result, RnnError, shape_string};
use crate::model::Rnn;
use crate::params::RnnParams;
use crate::tensor_file::{TensorFile, write_f32};

/// Loads `path` as a `mode` stack. `prefix` is what precedes the parameter names when the layer
/// was a submodule (e.g. `"rnn."`), "" otherwise. Every expected name must be there with its
/// shape and no other name may be; errors list what was expected.
pub fn load_state_dict(
    path: &Path,
    mode: Mode,
    prefix: &str,
    batch_first: bool,
) -> Result<Rnn<f32>> {
    let file = TensorFile::read(path)?;
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
                names(&file)
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
    if let Some(extra) = file.names().find(|n| !known.iter().any(|k| k == n)) {
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
    let named = rnn.params().named(rnn.config());
    let tensors: Vec<_> = named
        .into_iter()
        .map(|(name, t)| (format!("{prefix}{name}"), t))
        .collect();
    write_f32(
        path,
        &tensors,
        HashMap::from([("format".to_string(), "pt".to_string())]),
    )
}

fn names(file: &TensorFile) -> String {
    file.names().collect::<Vec<_>>().join(", ")
}
