//! A stack of layers, each with one or two directions: forward with a tape, and BPTT through it.

use ndarray::{Array2, Array3, Axis, s};

use super::Workspace;
pub use super::direction::LayerInput;
use super::direction::{self, DirectionTape, DirectionUpstream};
use crate::Real;
use crate::config::RnnConfig;
use crate::engine::{StackGrads, StackInput, StackInputs, StackOutput, StackUpstream};
use crate::params::RnnParams;

/// The first layer's input, kept for the backward pass.
enum FirstInput<T> {
    /// (T, B, I)
    Dense(Array3<T>),
    /// (T, B)
    Tokens(Array2<usize>),
}

/// What the backward pass of the whole stack needs.
pub struct StackTape<T> {
    first_input: FirstInput<T>,
    /// The input of every layer above the first: (T, B, D*H).
    upper_inputs: Vec<Array3<T>>,
    /// Indexed by layer * D + direction.
    directions: Vec<DirectionTape<T>>,
    /// (B): each row's length, for a variable-length batch.
    lengths: Option<Vec<usize>>,
    /// (T, B, D*H) per layer but the last: the dropout mask its output was multiplied by.
    dropout: Vec<Array3<T>>,
}

impl<T: Real> StackTape<T> {
    /// A tape with nothing on it, for a forward that keeps none.
    pub fn empty() -> Self {
        StackTape {
            first_input: FirstInput::Tokens(Array2::zeros((0, 0))),
            upper_inputs: Vec::new(),
            directions: Vec::new(),
            lengths: None,
            dropout: Vec::new(),
        }
    }

    /// Hands every buffer back, for a forward pass that needs no backward.
    pub fn recycle(self, workspace: &Workspace<T>) {
        if let FirstInput::Dense(x) = self.first_input {
            workspace.recycle(x);
        }
        for x in self.upper_inputs {
            workspace.recycle(x);
        }
        for tape in self.directions {
            tape.recycle(workspace);
        }
    }
}

/// A forward of the stack with the tape BPTT needs (`StackInputs` says what each input is).
/// Shapes and token ranges are checked by the caller.
pub fn forward<T: Real>(
    config: &RnnConfig,
    params: &RnnParams<T>,
    inputs: StackInputs<'_, T>,
    workspace: &Workspace<T>,
) -> (StackOutput<T>, StackTape<T>) {
    let StackInputs {
        input,
        h0,
        c0,
        lengths,
        dropout,
    } = inputs;
    let (seq, batch) = input.seq_batch();
    let (hidden, dirs) = (config.hidden_size, config.directions());
    let states = config.num_layers * dirs;
    let mut h_n = Array3::zeros((states, batch, hidden));
    let mut c_n = config
        .mode
        .has_cell_state()
        .then(|| Array3::zeros((states, batch, hidden)));
    let first_input = match input {
        StackInput::Dense(x) => {
            let mut copy = workspace.overwritable(x.dim());
            copy.assign(&x);
            FirstInput::Dense(copy)
        }
        StackInput::Tokens(ids) => FirstInput::Tokens(ids.to_owned()),
    };
    let (h0, c0) = (h0.view(), c0.as_ref().map(|c| c.view()));
    let mut upper_inputs: Vec<Array3<T>> = Vec::with_capacity(config.num_layers);
    let mut directions = Vec::with_capacity(states);
    for layer in 0..config.num_layers {
        // Every direction writes its columns whole.
        let mut output = workspace.overwritable((seq, batch, dirs * hidden));
        let input = layer_input(&first_input, &upper_inputs, layer);
        for dir in 0..dirs {
            let k = layer * dirs + dir;
            let tape = direction::forward(
                config.mode,
                params.cell(config, layer, dir),
                input,
                h0.index_axis(Axis(0), k),
                c0.map(|c| c.index_axis_move(Axis(0), k)),
                dir == 1,
                lengths,
                workspace,
            );
            output
                .slice_mut(s![.., .., dir * hidden..(dir + 1) * hidden])
                .assign(&tape.outputs());
            h_n.index_axis_mut(Axis(0), k).assign(&tape.final_hidden());
            if let (Some(c_n), Some(c)) = (c_n.as_mut(), tape.final_cell()) {
                c_n.index_axis_mut(Axis(0), k).assign(&c);
            }
            directions.push(tape);
        }
        for (b, &len) in lengths.unwrap_or(&[]).iter().enumerate() {
            output.slice_mut(s![len.., b, ..]).fill(T::zero());
        }
        if let Some(mask) = dropout.get(layer) {
            // The layer above reads (and its weight gradient uses) the dropped output.
            output.zip_mut_with(mask, |x, &m| *x = *x * m);
        }
        upper_inputs.push(output);
    }
    let output = upper_inputs.pop().expect("at least one layer");
    (
        StackOutput { output, h_n, c_n },
        StackTape {
            first_input,
            upper_inputs,
            directions,
            lengths: lengths.map(<[usize]>::to_vec),
            dropout,
        },
    )
}

/// The input of `layer`: the first input, or the output of the layer below.
fn layer_input<'a, T>(
    first: &'a FirstInput<T>,
    upper: &'a [Array3<T>],
    layer: usize,
) -> LayerInput<'a, T> {
    match (layer, first) {
        (0, FirstInput::Dense(x)) => LayerInput::Dense(x.view()),
        (0, FirstInput::Tokens(ids)) => LayerInput::Tokens(ids.view()),
        _ => LayerInput::Dense(upper[layer - 1].view()),
    }
}

/// BPTT through the stack. A token input has no input gradient: `need_input_grad` must then be
/// false.
pub fn backward<T: Real>(
    config: &RnnConfig,
    params: &RnnParams<T>,
    tape: StackTape<T>,
    upstream: StackUpstream<'_, T>,
    need_input_grad: bool,
    workspace: &Workspace<T>,
) -> StackGrads<T> {
    let (grad_output, grad_h_n, grad_c_n) = (
        upstream.output.view(),
        upstream.h_n.view(),
        upstream.c_n.as_ref().map(|c| c.view()),
    );
    let StackTape {
        first_input,
        upper_inputs,
        mut directions,
        lengths,
        dropout,
    } = tape;
    let (seq, batch, _) = grad_output.dim();
    let (hidden, dirs) = (config.hidden_size, config.directions());
    let states = config.num_layers * dirs;
    let mut grads = RnnParams::zeros(config);
    let mut h0 = Array3::zeros((states, batch, hidden));
    let mut c0 = config
        .mode
        .has_cell_state()
        .then(|| Array3::zeros((states, batch, hidden)));
    // dLoss/d(this layer's output), starting from the top of the stack.
    let mut grad_above = grad_output.as_standard_layout();
    let mut grad_input = None;
    for layer in (0..config.num_layers).rev() {
        let x = layer_input(&first_input, &upper_inputs, layer);
        let features = match x {
            LayerInput::Dense(x) => x.len_of(Axis(2)),
            LayerInput::Tokens(_) => 0,
        };
        let mut grad_x = (layer > 0 || need_input_grad && matches!(x, LayerInput::Dense(_)))
            .then(|| Array2::<T>::zeros((seq * batch, features)));
        for dir in (0..dirs).rev() {
            let k = layer * dirs + dir;
            let tape = directions.pop().expect("one tape per layer and direction");
            let upstream = DirectionUpstream {
                grad_output: grad_above.slice(s![.., .., dir * hidden..(dir + 1) * hidden]),
                grad_h_n: grad_h_n.index_axis(Axis(0), k),
                grad_c_n: grad_c_n.map(|g| g.index_axis_move(Axis(0), k)),
                lengths: lengths.as_deref(),
            };
            let initial = direction::backward(
                params.cell(config, layer, dir),
                tape,
                x,
                upstream,
                &mut grads.cells[k],
                grad_x.as_mut().map(|g| g.view_mut()),
                workspace,
            );
            h0.index_axis_mut(Axis(0), k).assign(&initial.h0);
            if let (Some(c0), Some(g)) = (c0.as_mut(), initial.c0) {
                c0.index_axis_mut(Axis(0), k).assign(&g);
            }
        }
        grad_input = grad_x.map(|g| {
            g.into_shape_with_order((seq, batch, features))
                .expect("contiguous")
        });
        if layer > 0 {
            let mut grad = grad_input
                .take()
                .expect("layers above the first always pass gradients down");
            if let Some(mask) = dropout.get(layer - 1) {
                grad.zip_mut_with(mask, |g, &m| *g = *g * m);
            }
            grad_above = grad.into();
        }
    }
    if let FirstInput::Dense(x) = first_input {
        workspace.recycle(x);
    }
    for x in upper_inputs {
        workspace.recycle(x);
    }
    StackGrads {
        input: grad_input,
        h0,
        c0,
        params: grads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conventions::Mode;
    use crate::cpu::team::with_forced_parties;

    /// Every number a forward and BPTT through the stack produce, flattened.
    fn forward_and_backward(config: &RnnConfig, parties: usize) -> Vec<f64> {
        let (seq, batch, hidden) = (6, 4, config.hidden_size);
        let states = config.num_layers * config.directions();
        let wave = |n: usize, k: f64| (n as f64 * k).sin();
        let params = RnnParams::<f64>::init(config, 7);
        let x = Array3::from_shape_fn((seq, batch, config.input_size), |(t, b, i)| {
            wave(t * 31 + b * 7 + i, 0.37)
        });
        let h0 = Array3::from_shape_fn((states, batch, hidden), |(k, b, j)| {
            wave(k * 11 + b * 5 + j, 0.53) * 0.5
        });
        let c0 = h0.mapv(|v| -v);
        let lengths = [6, 3, 1, 5];
        let workspace = Workspace::new();
        with_forced_parties(parties, || {
            let inputs = StackInputs {
                lengths: Some(&lengths),
                ..StackInputs::dense(
                    x.view(),
                    h0.view(),
                    config.mode.has_cell_state().then(|| c0.view()),
                )
            };
            let (out, tape) = forward(config, &params, inputs, &workspace);
            let grad_out = out.output.mapv(|v| (3.0 * v).cos());
            let grad_h_n = out.h_n.mapv(|v| v - 0.25);
            let grad_c_n = out.c_n.as_ref().map(|c| c.mapv(|v| 0.5 * v + 0.1));
            let upstream = StackUpstream::of(
                grad_out.view(),
                grad_h_n.view(),
                grad_c_n.as_ref().map(|g| g.view()),
            );
            let grads = backward(config, &params, tape, upstream, true, &workspace);
            let mut all: Vec<f64> = out.output.iter().chain(&out.h_n).copied().collect();
            all.extend(out.c_n.iter().flatten());
            all.extend(grads.input.iter().flatten());
            all.extend(grads.h0.iter().chain(grads.c0.iter().flatten()));
            all.extend(grads.params.slices().into_iter().flatten());
            all
        })
    }

    /// The single-thread path is the one the PyTorch parity cases and the finite-difference
    /// checks test (their hidden sizes give one party); a team splitting the units unevenly must
    /// compute the same numbers, masked rows, both directions and every cell included.
    #[test]
    fn a_team_of_threads_computes_what_one_thread_does() {
        for mode in [Mode::RnnTanh, Mode::RnnRelu, Mode::Lstm, Mode::Gru] {
            let config = RnnConfig::new(mode, 5, 7).layers(2).bidirectional(true);
            let alone = forward_and_backward(&config, 1);
            for parties in [3, 7] {
                let team = forward_and_backward(&config, parties);
                assert_eq!(alone.len(), team.len());
                for (k, (a, b)) in alone.iter().zip(&team).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-12 * (1.0 + a.abs()),
                        "{mode:?}, {parties} threads, value {k}: {b} vs {a} alone"
                    );
                }
            }
        }
    }
}
