//! `Rnn`: the public model type. Checks every tensor it is given, handles `batch_first`, and
//! runs the stack on the CPU path.

use ndarray::{Array3, ArrayView3, CowArray, Ix3};

use crate::config::RnnConfig;
use crate::cpu::stack::{self, StackTape};
use crate::cpu::{Real, Workspace, on_thread_pool};
use crate::error::{Result, RnnError, shape_string};
use crate::params::RnnParams;

/// A recurrent stack with its parameters, as `torch.nn.RNN/LSTM/GRU`.
#[derive(Clone, Debug)]
pub struct Rnn<T = f32> {
    config: RnnConfig,
    params: RnnParams<T>,
    /// Large buffers kept between calls.
    workspace: Workspace<T>,
}

impl<T: PartialEq> PartialEq for Rnn<T> {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config && self.params == other.params
    }
}

/// What `forward` returns, in the layout the config asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnOutput<T> {
    /// (T, B, D*H), or (B, T, D*H) with `batch_first`
    pub output: Array3<T>,
    /// (L*D, B, H)
    pub h_n: Array3<T>,
    /// (L*D, B, H), LSTM only
    pub c_n: Option<Array3<T>>,
}

/// Upstream gradients for `backward`; a `None` is a zero gradient, as for an unused output.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutputGrads<'a, T> {
    /// (T, B, D*H), or (B, T, D*H) with `batch_first`
    pub output: Option<ArrayView3<'a, T>>,
    /// (L*D, B, H)
    pub h_n: Option<ArrayView3<'a, T>>,
    /// (L*D, B, H), LSTM only
    pub c_n: Option<ArrayView3<'a, T>>,
}

/// Gradients of everything the forward pass read.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnGrads<T> {
    /// Same layout as the input; `None` unless asked for.
    pub input: Option<Array3<T>>,
    /// (L*D, B, H)
    pub h0: Array3<T>,
    /// (L*D, B, H), LSTM only
    pub c0: Option<Array3<T>>,
    /// Same names and shapes as the parameters.
    pub params: RnnParams<T>,
}

/// What `backward` needs from `forward_train`.
pub struct Tape<T> {
    stack: StackTape<T>,
    seq_len: usize,
    batch: usize,
}

impl<T: Real> Rnn<T> {
    /// A model with PyTorch's default initialisation, reproducible from `seed`.
    pub fn new(config: RnnConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let params = RnnParams::init(&config, seed);
        Ok(Rnn {
            config,
            params,
            workspace: Workspace::new(),
        })
    }

    /// A model with given parameters; every shape is checked against the config.
    pub fn from_params(config: RnnConfig, params: RnnParams<T>) -> Result<Self> {
        config.validate()?;
        let want = RnnParams::<T>::zeros(&config);
        let (got_named, want_named) = (params.named(&config), want.named(&config));
        if params.cells.len() != want.cells.len() || got_named.len() != want_named.len() {
            return Err(RnnError::Config(format!(
                "parameters hold {} tensors in {} cells, the config needs {} in {}",
                got_named.len(),
                params.cells.len(),
                want_named.len(),
                want.cells.len()
            )));
        }
        for ((name, got), (_, want)) in got_named.iter().zip(&want_named) {
            if got.shape() != want.shape() {
                return Err(RnnError::Shape {
                    tensor: name.clone(),
                    expected: shape_string(want.shape()),
                    got: got.shape().to_vec(),
                });
            }
        }
        Ok(Rnn {
            config,
            params,
            workspace: Workspace::new(),
        })
    }

    pub fn config(&self) -> &RnnConfig {
        &self.config
    }

    pub fn params(&self) -> &RnnParams<T> {
        &self.params
    }

    pub fn params_mut(&mut self) -> &mut RnnParams<T> {
        &mut self.params
    }

    /// Inference: output and final states from `h0` / `c0` (zeros when `None`).
    /// input (T, B, I) or (B, T, I) with `batch_first`; h0, c0 (L*D, B, H).
    pub fn forward(
        &self,
        input: ArrayView3<'_, T>,
        h0: Option<ArrayView3<'_, T>>,
        c0: Option<ArrayView3<'_, T>>,
    ) -> Result<RnnOutput<T>> {
        let (out, tape) = self.forward_train(input, h0, c0)?;
        tape.stack.recycle(&self.workspace);
        Ok(out)
    }

    /// Forward pass that also returns the tape `backward` needs.
    pub fn forward_train(
        &self,
        input: ArrayView3<'_, T>,
        h0: Option<ArrayView3<'_, T>>,
        c0: Option<ArrayView3<'_, T>>,
    ) -> Result<(RnnOutput<T>, Tape<T>)> {
        let cfg = &self.config;
        let input = self.to_seq_first(input);
        let (seq_len, batch, features) = input.dim();
        if seq_len == 0 || batch == 0 {
            return Err(RnnError::ZeroSize {
                what: if seq_len == 0 {
                    "sequence length of input"
                } else {
                    "batch size of input"
                }
                .to_string(),
            });
        }
        if features != cfg.input_size {
            let expected = if cfg.batch_first {
                "(B, T, {I})"
            } else {
                "(T, B, {I})"
            };
            return Err(RnnError::Shape {
                tensor: "input".into(),
                expected: expected.replace("{I}", &cfg.input_size.to_string()),
                got: self.api_dims(input.dim()),
            });
        }
        check_finite("input", input.view())?;
        let zeros = self.state_zeros(batch);
        let h0 = self.check_state("h0", h0, batch)?.unwrap_or(zeros.view());
        let c0 = if cfg.mode.has_cell_state() {
            Some(self.check_state("c0", c0, batch)?.unwrap_or(zeros.view()))
        } else if c0.is_some() {
            return Err(RnnError::Config(format!(
                "c0 is only for LSTM, this model is {}",
                cfg.mode
            )));
        } else {
            None
        };
        let (out, stack) = on_thread_pool(|| {
            stack::forward(cfg, &self.params, input.view(), h0, c0, &self.workspace)
        });
        let output = RnnOutput {
            output: self.to_api_layout(out.output),
            h_n: out.h_n,
            c_n: out.c_n,
        };
        Ok((
            output,
            Tape {
                stack,
                seq_len,
                batch,
            },
        ))
    }

    /// BPTT from upstream gradients; `need_input_grad` adds dLoss/d input.
    pub fn backward(
        &self,
        tape: Tape<T>,
        grads: OutputGrads<'_, T>,
        need_input_grad: bool,
    ) -> Result<RnnGrads<T>> {
        let cfg = &self.config;
        let (seq_len, batch) = (tape.seq_len, tape.batch);
        let out_dims = (seq_len, batch, cfg.output_size());
        let grad_output = match grads.output {
            Some(g) => {
                let g = self.to_seq_first(g);
                if g.dim() != out_dims {
                    return Err(RnnError::Shape {
                        tensor: "grad_output".into(),
                        expected: shape_string(&self.api_dims(out_dims)),
                        got: self.api_dims(g.dim()),
                    });
                }
                g
            }
            None => CowArray::from(Array3::zeros(out_dims)),
        };
        let zeros = self.state_zeros(batch);
        let grad_h_n = self
            .check_state("grad_h_n", grads.h_n, batch)?
            .unwrap_or(zeros.view());
        let grad_c_n = match (cfg.mode.has_cell_state(), grads.c_n) {
            (true, g) => Some(
                self.check_state("grad_c_n", g, batch)?
                    .unwrap_or(zeros.view()),
            ),
            (false, None) => None,
            (false, Some(_)) => {
                return Err(RnnError::Config(format!(
                    "grad_c_n is only for LSTM, this model is {}",
                    cfg.mode
                )));
            }
        };
        let g = on_thread_pool(|| {
            stack::backward(
                cfg,
                &self.params,
                tape.stack,
                grad_output.view(),
                grad_h_n,
                grad_c_n,
                need_input_grad,
                &self.workspace,
            )
        });
        Ok(RnnGrads {
            input: g.input.map(|x| self.to_api_layout(x)),
            h0: g.h0,
            c0: g.c0,
            params: g.params,
        })
    }

    fn state_zeros(&self, batch: usize) -> Array3<T> {
        let cfg = &self.config;
        Array3::zeros((cfg.num_layers * cfg.directions(), batch, cfg.hidden_size))
    }

    /// Checks a (L*D, B, H) state or state gradient.
    fn check_state<'a>(
        &self,
        name: &str,
        state: Option<ArrayView3<'a, T>>,
        batch: usize,
    ) -> Result<Option<ArrayView3<'a, T>>> {
        let Some(state) = state else { return Ok(None) };
        let cfg = &self.config;
        let want = [cfg.num_layers * cfg.directions(), batch, cfg.hidden_size];
        if state.shape() != want {
            return Err(RnnError::Shape {
                tensor: name.to_string(),
                expected: shape_string(&want),
                got: state.shape().to_vec(),
            });
        }
        check_finite(name, state)?;
        Ok(Some(state))
    }

    /// (B, T, F) -> (T, B, F) when batch-first; a view, no copy.
    fn to_seq_first<'a>(&self, x: ArrayView3<'a, T>) -> CowArray<'a, T, Ix3> {
        if self.config.batch_first {
            CowArray::from(x.permuted_axes([1, 0, 2]))
        } else {
            CowArray::from(x)
        }
    }

    fn to_api_layout(&self, x: Array3<T>) -> Array3<T> {
        if self.config.batch_first {
            x.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()
        } else {
            x
        }
    }

    fn api_dims(&self, (t, b, f): (usize, usize, usize)) -> Vec<usize> {
        if self.config.batch_first {
            vec![b, t, f]
        } else {
            vec![t, b, f]
        }
    }
}

/// NaN or infinity in an input poisons every output: refuse it with its position.
fn check_finite<T: Real>(name: &str, x: ArrayView3<'_, T>) -> Result<()> {
    match x.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(RnnError::NonFinite {
            tensor: name.to_string(),
            index,
            value: x
                .iter()
                .nth(index)
                .and_then(|v| v.to_f64())
                .unwrap_or(f64::NAN),
        }),
    }
}
