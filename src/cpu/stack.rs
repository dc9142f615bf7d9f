//! A stack of layers, each with one or two directions: forward with a tape, and BPTT through it.

use ndarray::{Array2, Array3, ArrayView3, Axis, s};

use super::direction::{self, DirectionTape};
use super::{Real, Workspace};
use crate::config::RnnConfig;
use crate::params::RnnParams;

/// What the forward pass of the whole stack returns.
#[derive(Clone, Debug, PartialEq)]
pub struct StackOutput<T> {
    /// (T, B, D*H): the last layer's hidden state at every step, directions side by side
    pub output: Array3<T>,
    /// (L*D, B, H)
    pub h_n: Array3<T>,
    /// (L*D, B, H), LSTM only
    pub c_n: Option<Array3<T>>,
}

/// What the backward pass of the whole stack needs.
pub struct StackTape<T> {
    /// Every layer's input: (T, B, I) for layer 0, (T, B, D*H) above it.
    layer_inputs: Vec<Array3<T>>,
    /// Indexed by layer * D + direction.
    directions: Vec<DirectionTape<T>>,
    /// (B): each row's length, for a variable-length batch.
    lengths: Option<Vec<usize>>,
}

impl<T: Real> StackTape<T> {
    /// A tape with nothing on it, for a forward that keeps none.
    pub fn empty() -> Self {
        StackTape {
            layer_inputs: Vec::new(),
            directions: Vec::new(),
            lengths: None,
        }
    }

    /// Hands every buffer back, for a forward pass that needs no backward.
    pub fn recycle(self, workspace: &Workspace<T>) {
        for x in self.layer_inputs {
            workspace.recycle(x);
        }
        for tape in self.directions {
            tape.recycle(workspace);
        }
    }
}

/// Gradients of everything the forward pass read.
#[derive(Clone, Debug, PartialEq)]
pub struct StackGrads<T> {
    /// (T, B, I), when asked for
    pub input: Option<Array3<T>>,
    /// (L*D, B, H)
    pub h0: Array3<T>,
    /// (L*D, B, H), LSTM only
    pub c0: Option<Array3<T>>,
    pub params: RnnParams<T>,
}

/// input (T, B, I); h0, c0 (L*D, B, H); lengths (B), each in 1..=T, for a variable-length
/// batch: outputs past a row's length are zero and h_n, c_n are each row's own last state.
/// Shapes are checked by the caller.
pub fn forward<T: Real>(
    config: &RnnConfig,
    params: &RnnParams<T>,
    input: ArrayView3<'_, T>,
    h0: ArrayView3<'_, T>,
    c0: Option<ArrayView3<'_, T>>,
    lengths: Option<&[usize]>,
    workspace: &Workspace<T>,
) -> (StackOutput<T>, StackTape<T>) {
    let (seq, batch, _) = input.dim();
    let (hidden, dirs) = (config.hidden_size, config.directions());
    let states = config.num_layers * dirs;
    let mut h_n = Array3::zeros((states, batch, hidden));
    let mut c_n = config
        .mode
        .has_cell_state()
        .then(|| Array3::zeros((states, batch, hidden)));
    let mut first_input = workspace.zeros(input.dim());
    first_input.assign(&input);
    let mut layer_inputs = vec![first_input];
    let mut directions = Vec::with_capacity(states);
    for layer in 0..config.num_layers {
        let mut output = workspace.zeros((seq, batch, dirs * hidden));
        for dir in 0..dirs {
            let k = layer * dirs + dir;
            let tape = direction::forward(
                config.mode,
                params.cell(config, layer, dir),
                layer_inputs[layer].view(),
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
        layer_inputs.push(output);
    }
    let output = layer_inputs.pop().expect("at least one layer");
    (
        StackOutput { output, h_n, c_n },
        StackTape {
            layer_inputs,
            directions,
            lengths: lengths.map(<[usize]>::to_vec),
        },
    )
}

#[allow(clippy::too_many_arguments)]
/// BPTT through the stack. grad_output (T, B, D*H); grad_h_n, grad_c_n (L*D, B, H).
pub fn backward<T: Real>(
    config: &RnnConfig,
    params: &RnnParams<T>,
    tape: StackTape<T>,
    grad_output: ArrayView3<'_, T>,
    grad_h_n: ArrayView3<'_, T>,
    grad_c_n: Option<ArrayView3<'_, T>>,
    need_input_grad: bool,
    workspace: &Workspace<T>,
) -> StackGrads<T> {
    let StackTape {
        layer_inputs,
        mut directions,
        lengths,
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
        let x = &layer_inputs[layer];
        let features = x.len_of(Axis(2));
        let mut grad_x =
            (layer > 0 || need_input_grad).then(|| Array2::<T>::zeros((seq * batch, features)));
        for dir in (0..dirs).rev() {
            let k = layer * dirs + dir;
            let tape = directions.pop().expect("one tape per layer and direction");
            let initial = direction::backward(
                params.cell(config, layer, dir),
                tape,
                x.view(),
                grad_above.slice(s![.., .., dir * hidden..(dir + 1) * hidden]),
                grad_h_n.index_axis(Axis(0), k),
                grad_c_n.map(|g| g.index_axis_move(Axis(0), k)),
                &mut grads.cells[k],
                grad_x.as_mut().map(|g| g.view_mut()),
                lengths.as_deref(),
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
            grad_above = grad_input
                .take()
                .expect("layers above the first always pass gradients down")
                .into();
        }
    }
    for x in layer_inputs {
        workspace.recycle(x);
    }
    StackGrads {
        input: grad_input,
        h0,
        c0,
        params: grads,
    }
}
