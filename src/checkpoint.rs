//! Checkpoints of the character language model: safetensors with PyTorch parameter names (so
//! `torch.nn.LSTM(...).load_state_dict` takes the stack's tensors), plus the optimizer moments,
//! the carried recurrent state, and metadata (config, vocabulary, step, training options).
//! Written atomically: a crash leaves the previous checkpoint whole.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array3, ArrayD};

use crate::config::RnnConfig;
use crate::conventions::Mode;
use crate::error::{Result, RnnError};
use crate::lm::{CharLm, LmState};
use crate::optim::Adam;
use crate::tensor_file::{TensorFile, write_f32};

pub const FORMAT: &str = "rnn-wgpu-checkpoint/1";

/// The metadata key of the text that trained the model (`data::TrainedOn` as JSON).
pub const TRAINED_ON_KEY: &str = "trained_on";

/// The largest step count a checkpoint may hold: far past any run, far from overflowing the
/// counters (Adam's bias correction raises beta to it).
pub const MAX_STEP: usize = i32::MAX as usize;

fn file_error(path: &Path, message: String) -> RnnError {
    RnnError::File {
        path: path.into(),
        message,
    }
}

/// The carried state: h and, for LSTM, c, each (L, B, H) with the spec's L and H and finite.
fn read_state(file: &TensorFile, spec: &LmSpec) -> Result<Option<LmState>> {
    let state3 = |name: &str, batch: Option<usize>| -> Result<Array3<f32>> {
        let t = file.f32(name)?;
        let batch_dim = batch.or_else(|| t.shape().get(1).copied()).unwrap_or(0);
        let want = [spec.layers, batch_dim.max(1), spec.hidden];
        if t.shape() != want {
            return Err(RnnError::Shape {
                tensor: name.into(),
                expected: format!("({}, B, {})", spec.layers, spec.hidden),
                got: t.shape().to_vec(),
            });
        }
        crate::params::check_finite_tensor(name, &t)?;
        Ok(t.into_dimensionality().expect("checked 3-d"))
    };
    if !file.contains("state.h") {
        return Ok(None);
    }
    let h = state3("state.h", None)?;
    let c = match (spec.mode.has_cell_state(), file.contains("state.c")) {
        (true, true) => Some(state3("state.c", Some(h.dim().1))?),
        (false, false) => None,
        (true, false) => {
            return Err(file_error(
                file.path(),
                "an LSTM state.h without its state.c".into(),
            ));
        }
        (false, true) => {
            return Err(file_error(
                file.path(),
                format!("state.c in a {} checkpoint (only LSTM has one)", spec.mode),
            ));
        }
    };
    Ok(Some(LmState { h, c }))
}

/// What identifies a model: a checkpoint for another one is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LmSpec {
    pub mode: Mode,
    pub vocab: Vec<char>,
    pub hidden: usize,
    pub layers: usize,
}

impl LmSpec {
    pub fn rnn_config(&self) -> RnnConfig {
        RnnConfig::new(self.mode, self.vocab.len(), self.hidden).layers(self.layers)
    }
}

/// Everything a run needs to continue exactly where it stopped.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub spec: LmSpec,
    pub lm: CharLm,
    pub adam: Adam,
    /// Optimizer steps taken.
    pub step: usize,
    /// The recurrent state carried into the next batch.
    pub state: Option<LmState>,
    /// Training options to check on resume (seq, batch, lr, clip, ...), as strings.
    pub options: HashMap<String, String>,
}

impl Checkpoint {
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, ArrayD<f32>)> = Vec::new();
        let named = self.lm.named();
        for (name, t) in &named {
            tensors.push((name.clone(), t.to_owned()));
        }
        if self.adam.m.len() == named.len() {
            for (((name, _), m), v) in named.iter().zip(&self.adam.m).zip(&self.adam.v) {
                tensors.push((
                    format!("optim.exp_avg.{name}"),
                    Array1::from(m.clone()).into_dyn(),
                ));
                tensors.push((
                    format!("optim.exp_avg_sq.{name}"),
                    Array1::from(v.clone()).into_dyn(),
                ));
            }
        }
        if let Some(state) = &self.state {
            tensors.push(("state.h".into(), state.h.clone().into_dyn()));
            if let Some(c) = &state.c {
                tensors.push(("state.c".into(), c.clone().into_dyn()));
            }
        }
        let mut meta = self.options.clone();
        let vocab: String = self.spec.vocab.iter().collect();
        for (k, v) in [
            ("format", FORMAT.to_string()),
            ("mode", self.spec.mode.to_string()),
            (
                "vocab",
                serde_json::to_string(&vocab).expect("a string serialises"),
            ),
            ("hidden_size", self.spec.hidden.to_string()),
            ("num_layers", self.spec.layers.to_string()),
            ("step", self.step.to_string()),
            ("adam_step", self.adam.step.to_string()),
            ("lr", self.adam.lr.to_string()),
        ] {
            meta.insert(k.to_string(), v);
        }
        let views: Vec<_> = tensors.iter().map(|(n, t)| (n.clone(), t.view())).collect();
        write_f32(path, &views, meta)
    }

    pub fn load(path: &Path) -> Result<Self> {
        Self::from_file(&TensorFile::read(path)?)
    }

    /// A checkpoint already read (see `TensorFile::meta("format")`).
    pub fn from_file(file: &TensorFile) -> Result<Self> {
        let path = file.path();
        let format = file.meta("format")?;
        if format != FORMAT {
            return Err(RnnError::File {
                path: path.into(),
                message: format!("format '{format}', expected '{FORMAT}'"),
            });
        }
        let vocab: String =
            serde_json::from_str(file.meta("vocab")?).map_err(|e| RnnError::File {
                path: path.into(),
                message: format!("vocabulary: {e}"),
            })?;
        let spec = LmSpec {
            mode: file.meta("mode")?.parse()?,
            vocab: vocab.chars().collect(),
            hidden: file.meta_parsed("hidden_size")?,
            layers: file.meta_parsed("num_layers")?,
        };
        crate::data::check_vocab(&spec.vocab).map_err(|message| RnnError::File {
            path: path.into(),
            message,
        })?;
        let lm = CharLm::from_lookup(spec.rnn_config(), |name| {
            file.contains(name).then(|| file.f32(name)).transpose()
        })?;
        let lr: f32 = file.meta_parsed("lr")?;
        if !(lr.is_finite() && lr > 0.0) {
            return Err(file_error(
                path,
                format!("lr {lr} is not a finite number above 0"),
            ));
        }
        let mut adam = Adam::new(lr);
        adam.step = file.meta_parsed("adam_step")?;
        let step: usize = file.meta_parsed("step")?;
        for (key, value) in [("step", step), ("adam_step", adam.step as usize)] {
            if value > MAX_STEP {
                return Err(file_error(
                    path,
                    format!("{key} {value} is past any run's (at most {MAX_STEP})"),
                ));
            }
        }
        if adam.step > 0 {
            for (name, param) in lm.named() {
                for (moment, into) in [("exp_avg", &mut adam.m), ("exp_avg_sq", &mut adam.v)] {
                    let key = format!("optim.{moment}.{name}");
                    let t = file.f32(&key)?;
                    // Every element of the parameter has its moment, on either backend.
                    if t.len() != param.len() {
                        return Err(RnnError::Shape {
                            tensor: key,
                            expected: format!("({}), one per element of {name}", param.len()),
                            got: t.shape().to_vec(),
                        });
                    }
                    crate::params::check_finite_tensor(&key, &t)?;
                    into.push(t.iter().copied().collect());
                }
            }
        }
        let state = self::read_state(file, &spec)?;
        let reserved = [
            "format",
            "mode",
            "vocab",
            "hidden_size",
            "num_layers",
            "step",
            "adam_step",
            "lr",
        ];
        let options = file
            .metadata()
            .iter()
            .filter(|(k, _)| !reserved.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Checkpoint {
            spec,
            lm,
            adam,
            step,
            state,
            options,
        })
    }

    /// Refuses to continue with another model, vocabulary or training options.
    /// The text that trained the model, where the checkpoint records it (and it parses).
    pub fn trained_on(&self) -> Option<crate::data::TrainedOn> {
        serde_json::from_str(self.options.get(TRAINED_ON_KEY)?).ok()
    }

    pub fn check_matches(&self, spec: &LmSpec, options: &HashMap<String, String>) -> Result<()> {
        if self.spec.vocab != spec.vocab {
            return Err(RnnError::Config(format!(
                "the checkpoint's vocabulary ({} characters) differs from this text's ({} characters)",
                self.spec.vocab.len(),
                spec.vocab.len()
            )));
        }
        let ours = (self.spec.mode, self.spec.hidden, self.spec.layers);
        let theirs = (spec.mode, spec.hidden, spec.layers);
        if ours != theirs {
            return Err(RnnError::Config(format!(
                "the checkpoint holds {} H={} L={}, this run asks for {} H={} L={}",
                ours.0, ours.1, ours.2, theirs.0, theirs.1, theirs.2
            )));
        }
        for (key, want) in options {
            if let Some(got) = self.options.get(key).filter(|got| *got != want) {
                return Err(RnnError::Config(format!(
                    "the checkpoint was trained with {key}={got}, this run asks for {key}={want}"
                )));
            }
        }
        Ok(())
    }
}
