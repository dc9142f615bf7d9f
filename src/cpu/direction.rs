//! One direction of one layer over a whole sequence: forward with its tape, and BPTT.
//!
//! Laid out the way fast RNN code is: the input projection of all T steps is one matrix product,
//! each step is one product with W_hh plus one fused gate update, and the weight gradients are
//! products over all T steps at once after the backward chain.
//!
//! States live in `states` (T+1, B, H) indexed by time so that both directions read their
//! previous states and outputs as contiguous slabs: the forward direction reads slot t and
//! writes t+1 (h0 in slot 0), the reverse direction reads t+1 and writes t (h0 in slot T).
//!
//! Variable-length batches (PyTorch's packed sequences) are masked steps: at a step t at or past
//! row b's length, row b's state passes through unchanged and its gate gradients are zero. The
//! forward direction so ends on each row's own last state, and the reverse direction starts
//! each row at its own end, from h0.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis, s};

use super::matmul::{TransposeScratch, matmul, matmul_batch_rows};
use super::{Real, Workspace, gru_cell, lstm_cell, rnn_cell};
use crate::conventions::Mode;
use crate::params::CellParams;

/// What one direction of one layer keeps from its forward pass for BPTT.
pub struct DirectionTape<T> {
    mode: Mode,
    reverse: bool,
    /// (T, B, G*H): activated gates of every step; reused in place for their gradients.
    gates: Array3<T>,
    /// (T+1, B, H): hidden states, time-indexed as the module comment says.
    states: Array3<T>,
    /// (T+1, B, H): LSTM cell states, indexed like `states`.
    cells: Option<Array3<T>>,
    /// (T, B, H): tanh of each new LSTM cell state.
    tanh_cells: Option<Array3<T>>,
    /// (T, B, H): GRU's W_hn h + b_hn of every step.
    hidden_n: Option<Array3<T>>,
}

/// What one layer reads.
#[derive(Clone, Copy, Debug)]
pub enum LayerInput<'a, T> {
    /// (T, B, I)
    Dense(ArrayView3<'a, T>),
    /// (T, B): token ids in 0..I standing for one-hot rows of width I. They are never built: the
    /// projection of a one-hot row is a column of W_ih (a gather), its weight gradient a
    /// scatter-add, which skips a product with I-1 zeros in every row.
    Tokens(ArrayView2<'a, usize>),
}

impl<T> LayerInput<'_, T> {
    /// (T, B)
    pub fn seq_batch(&self) -> (usize, usize) {
        match self {
            LayerInput::Dense(x) => (x.dim().0, x.dim().1),
            LayerInput::Tokens(ids) => ids.dim(),
        }
    }
}

/// Batch rows whose sequence has ended by time `t`; none without lengths.
fn rows_past_end(lengths: Option<&[usize]>, t: usize) -> impl Iterator<Item = usize> + '_ {
    lengths
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .filter(move |&(_, &len)| t >= len)
        .map(|(b, _)| b)
}

/// Slots (previous, next) of the state buffers at time `t`.
fn state_slots(t: usize, reverse: bool) -> (usize, usize) {
    if reverse { (t + 1, t) } else { (t, t + 1) }
}

/// Borrows slot `read` of a (S, B, H) buffer and slot `write` mutably; the two differ by one.
fn read_and_write<T>(
    buf: &mut Array3<T>,
    read: usize,
    write: usize,
) -> (ArrayViewMut2<'_, T>, ArrayViewMut2<'_, T>) {
    buf.multi_slice_mut((s![read, .., ..], s![write, .., ..]))
}

/// (T, B, F) -> (T*B, F) of a contiguous view.
fn flat<T>(a: ArrayView3<'_, T>) -> ArrayView2<'_, T> {
    let (t, b, f) = a.dim();
    a.into_shape_with_order((t * b, f)).expect("contiguous")
}

impl<T: Real> DirectionTape<T> {
    /// (T, B, H): the direction's output at every time step.
    pub fn outputs(&self) -> ArrayView3<'_, T> {
        let t = self.gates.len_of(Axis(0));
        if self.reverse {
            self.states.slice(s![..t, .., ..])
        } else {
            self.states.slice(s![1.., .., ..])
        }
    }

    /// (T, B, H): the state each step started from.
    fn previous_states(&self) -> ArrayView3<'_, T> {
        let t = self.gates.len_of(Axis(0));
        if self.reverse {
            self.states.slice(s![1.., .., ..])
        } else {
            self.states.slice(s![..t, .., ..])
        }
    }

    fn final_slot(&self) -> usize {
        if self.reverse {
            0
        } else {
            self.gates.len_of(Axis(0))
        }
    }

    /// (B, H): h after the last step this direction took.
    pub fn final_hidden(&self) -> ArrayView2<'_, T> {
        self.states.index_axis(Axis(0), self.final_slot())
    }

    /// (B, H): LSTM's c after the last step.
    pub fn final_cell(&self) -> Option<ArrayView2<'_, T>> {
        let slot = self.final_slot();
        self.cells.as_ref().map(|c| c.index_axis(Axis(0), slot))
    }

    /// Hands every buffer back to the workspace.
    pub fn recycle(self, workspace: &Workspace<T>) {
        workspace.recycle(self.gates);
        workspace.recycle(self.states);
        for buffer in [self.cells, self.tanh_cells, self.hidden_n]
            .into_iter()
            .flatten()
        {
            workspace.recycle(buffer);
        }
    }
}

/// Runs one direction over the sequence and returns its tape.
/// input: (T, B, in) or (T, B) tokens; h0, c0 (B, H); lengths (B), each in 1..=T, for a
/// variable-length batch.
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Real>(
    mode: Mode,
    params: &CellParams<T>,
    input: LayerInput<'_, T>,
    h0: ArrayView2<'_, T>,
    c0: Option<ArrayView2<'_, T>>,
    reverse: bool,
    lengths: Option<&[usize]>,
    workspace: &Workspace<T>,
) -> DirectionTape<T> {
    let (seq, batch) = input.seq_batch();
    let hidden = params.weight_hh.ncols();
    let gate_rows = params.weight_hh.nrows();

    // The input projection of every step in one product, biases folded in where the cell allows.
    let mut gates: Array3<T> = workspace.zeros((seq, batch, gate_rows));
    {
        let mut proj = gates
            .view_mut()
            .into_shape_with_order((seq * batch, gate_rows))
            .expect("contiguous");
        let mut bias = Array2::<T>::zeros((1, gate_rows));
        if let Some(b) = &params.bias_ih {
            bias.row_mut(0).assign(b);
        }
        if let (Some(b), false) = (&params.bias_hh, mode == Mode::Gru) {
            bias.row_mut(0).zip_mut_with(b, |acc, &v| *acc = *acc + v);
        }
        proj.assign(&bias.row(0));
        match input {
            LayerInput::Dense(x) => matmul(proj, flat(x), params.weight_ih.t(), true),
            LayerInput::Tokens(ids) => {
                // (in, G*H): row k is the projection of token k.
                let table = params.weight_ih.t().as_standard_layout().into_owned();
                for (mut row, &id) in proj.rows_mut().into_iter().zip(ids.iter()) {
                    row.zip_mut_with(&table.row(id), |acc, &w| *acc = *acc + w);
                }
            }
        }
    }

    let mut states: Array3<T> = workspace.zeros((seq + 1, batch, hidden));
    let mut cells = (mode == Mode::Lstm).then(|| workspace.zeros((seq + 1, batch, hidden)));
    let mut tanh_cells = (mode == Mode::Lstm).then(|| workspace.zeros((seq, batch, hidden)));
    let mut hidden_n = (mode == Mode::Gru).then(|| workspace.zeros((seq, batch, hidden)));
    let h0_slot = if reverse { seq } else { 0 };
    states.index_axis_mut(Axis(0), h0_slot).assign(&h0);
    if let (Some(c), Some(c0)) = (cells.as_mut(), c0) {
        c.index_axis_mut(Axis(0), h0_slot).assign(&c0);
    }
    // GRU keeps its hidden projection apart: b_hn and W_hn h sit inside r * (...).
    let mut hproj = Array2::<T>::zeros((batch, gate_rows));
    let mut scratch = TransposeScratch::new(batch, hidden, gate_rows);

    let steps: Box<dyn Iterator<Item = usize>> = if reverse {
        Box::new((0..seq).rev())
    } else {
        Box::new(0..seq)
    };
    for t in steps {
        let (prev, next) = state_slots(t, reverse);
        let (h_prev, mut h_next) = read_and_write(&mut states, prev, next);
        let mut step_gates = gates.index_axis_mut(Axis(0), t);
        // The one product with W_hh of this step; GRU keeps it apart from the x projection.
        if mode == Mode::Gru {
            match &params.bias_hh {
                Some(b) => hproj.assign(b),
                None => hproj.fill(T::zero()),
            }
            matmul_batch_rows(
                hproj.view_mut(),
                h_prev.view(),
                params.weight_hh.t(),
                true,
                &mut scratch,
            );
        } else {
            matmul_batch_rows(
                step_gates.view_mut(),
                h_prev.view(),
                params.weight_hh.t(),
                true,
                &mut scratch,
            );
        }
        let step_slice = step_gates.as_slice_mut().expect("contiguous");
        match mode {
            Mode::RnnTanh | Mode::RnnRelu => {
                rnn_cell::forward(step_slice, mode == Mode::RnnRelu);
                h_next.assign(&step_gates);
            }
            Mode::Lstm => {
                let c = cells.as_mut().expect("LSTM keeps cells");
                let (c_prev, mut c_next) = read_and_write(c, prev, next);
                let mut tc = tanh_cells
                    .as_mut()
                    .expect("LSTM keeps tanh(c)")
                    .index_axis_mut(Axis(0), t);
                lstm_cell::forward(
                    step_slice,
                    c_prev.as_slice().expect("contiguous"),
                    c_next.as_slice_mut().expect("contiguous"),
                    tc.as_slice_mut().expect("contiguous"),
                    h_next.as_slice_mut().expect("contiguous"),
                    hidden,
                );
            }
            Mode::Gru => {
                let mut hn = hidden_n
                    .as_mut()
                    .expect("GRU keeps h_n")
                    .index_axis_mut(Axis(0), t);
                gru_cell::forward(
                    step_slice,
                    hproj.as_slice().expect("contiguous"),
                    h_prev.as_slice().expect("contiguous"),
                    hn.as_slice_mut().expect("contiguous"),
                    h_next.as_slice_mut().expect("contiguous"),
                    hidden,
                );
            }
        }
        for b in rows_past_end(lengths, t) {
            h_next.row_mut(b).assign(&h_prev.row(b));
            if let Some(c) = cells.as_mut() {
                let (c_prev, mut c_next) = read_and_write(c, prev, next);
                c_next.row_mut(b).assign(&c_prev.row(b));
            }
        }
    }
    DirectionTape {
        mode,
        reverse,
        gates,
        states,
        cells,
        tanh_cells,
        hidden_n,
    }
}

/// Gradients that leave one direction through its initial state.
pub struct InitialStateGrads<T> {
    /// (B, H)
    pub h0: Array2<T>,
    /// (B, H), LSTM only
    pub c0: Option<Array2<T>>,
}

/// BPTT through one direction. Consumes the tape (its gate buffer holds the gate gradients).
/// input: what the forward pass read; a token input has no input gradient (`grad_input` must be
/// `None`); grad_output (T, B, H): dLoss/d output (any
/// strides); grad_h_n, grad_c_n (B, H); grads: this cell's parameter gradients, overwritten;
/// grad_input (T*B, in): dLoss/d input, accumulated into when given; lengths (B): those the
/// forward pass ran with.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Real>(
    params: &CellParams<T>,
    mut tape: DirectionTape<T>,
    input: LayerInput<'_, T>,
    grad_output: ArrayView3<'_, T>,
    grad_h_n: ArrayView2<'_, T>,
    grad_c_n: Option<ArrayView2<'_, T>>,
    grads: &mut CellParams<T>,
    grad_input: Option<ArrayViewMut2<'_, T>>,
    lengths: Option<&[usize]>,
    workspace: &Workspace<T>,
) -> InitialStateGrads<T> {
    let (seq, batch) = input.seq_batch();
    let hidden = params.weight_hh.ncols();
    let gate_rows = params.weight_hh.nrows();
    let mode = tape.mode;

    let mut dh_carry = grad_h_n.to_owned();
    let mut dc_carry = (mode == Mode::Lstm).then(|| match grad_c_n {
        Some(g) => g.to_owned(),
        None => Array2::zeros((batch, hidden)),
    });
    let mut dh = Array2::<T>::zeros((batch, hidden));
    let mut scratch = TransposeScratch::new(batch, gate_rows, hidden);
    // GRU's gradients of the hidden projections differ from the input ones in the n block.
    let mut hidden_grads = (mode == Mode::Gru).then(|| workspace.zeros((seq, batch, gate_rows)));

    let steps: Box<dyn Iterator<Item = usize>> = if tape.reverse {
        Box::new(0..seq)
    } else {
        Box::new((0..seq).rev())
    };
    // Rows past their end at the current step: the gradients they carry, kept aside.
    let mut held_dh = Array2::<T>::zeros((batch, hidden));
    let mut held_dc = Array2::<T>::zeros((batch, hidden));
    for t in steps {
        let (prev, _) = state_slots(t, tape.reverse);
        for b in rows_past_end(lengths, t) {
            held_dh.row_mut(b).assign(&dh_carry.row(b));
            if let Some(dc) = &dc_carry {
                held_dc.row_mut(b).assign(&dc.row(b));
            }
        }
        // dLoss/dh_t: from the output at t and from step t+1 through W_hh
        ndarray::Zip::from(&mut dh)
            .and(grad_output.index_axis(Axis(0), t))
            .and(&dh_carry)
            .for_each(|d, &g, &c| *d = g + c);
        let dh_slice = dh.as_slice().expect("contiguous");
        let mut step = tape.gates.index_axis_mut(Axis(0), t);
        let step_grads = step.as_slice_mut().expect("contiguous");
        match mode {
            Mode::RnnTanh | Mode::RnnRelu => {
                rnn_cell::backward(step_grads, dh_slice, mode == Mode::RnnRelu);
                matmul_batch_rows(
                    dh_carry.view_mut(),
                    step.view(),
                    params.weight_hh.view(),
                    false,
                    &mut scratch,
                );
            }
            Mode::Lstm => {
                let cells = tape.cells.as_ref().expect("LSTM keeps cells");
                let tanh_c = tape.tanh_cells.as_ref().expect("LSTM keeps tanh(c)");
                lstm_cell::backward(
                    step_grads,
                    tanh_c
                        .index_axis(Axis(0), t)
                        .as_slice()
                        .expect("contiguous"),
                    cells
                        .index_axis(Axis(0), prev)
                        .as_slice()
                        .expect("contiguous"),
                    dh_slice,
                    dc_carry
                        .as_mut()
                        .expect("LSTM carries dc")
                        .as_slice_mut()
                        .expect("contiguous"),
                    hidden,
                );
                matmul_batch_rows(
                    dh_carry.view_mut(),
                    step.view(),
                    params.weight_hh.view(),
                    false,
                    &mut scratch,
                );
            }
            Mode::Gru => {
                let mut hg = hidden_grads
                    .as_mut()
                    .expect("GRU keeps hidden grads")
                    .index_axis_mut(Axis(0), t);
                gru_cell::backward(
                    step_grads,
                    hg.as_slice_mut().expect("contiguous"),
                    tape.hidden_n
                        .as_ref()
                        .expect("GRU keeps h_n")
                        .index_axis(Axis(0), t)
                        .as_slice()
                        .expect("contiguous"),
                    tape.states
                        .index_axis(Axis(0), prev)
                        .as_slice()
                        .expect("contiguous"),
                    dh_slice,
                    dh_carry.as_slice_mut().expect("contiguous"),
                    hidden,
                );
                matmul_batch_rows(
                    dh_carry.view_mut(),
                    hg.view(),
                    params.weight_hh.view(),
                    true,
                    &mut scratch,
                );
            }
        }
        // A step past a row's end was a copy of its state: the gradients pass through it, and
        // its gates (never used) get none.
        for b in rows_past_end(lengths, t) {
            dh_carry.row_mut(b).assign(&held_dh.row(b));
            if let Some(dc) = dc_carry.as_mut() {
                dc.row_mut(b).assign(&held_dc.row(b));
            }
            tape.gates.slice_mut(s![t, b, ..]).fill(T::zero());
            if let Some(hg) = hidden_grads.as_mut() {
                hg.slice_mut(s![t, b, ..]).fill(T::zero());
            }
        }
    }

    // Parameter gradients: products over all T steps at once.
    let x_grads = flat(tape.gates.view());
    let h_grads = match &hidden_grads {
        Some(hg) => flat(hg.view()),
        None => x_grads.view(),
    };
    match input {
        LayerInput::Dense(x) => matmul(grads.weight_ih.view_mut(), x_grads.t(), flat(x), false),
        LayerInput::Tokens(ids) => {
            // (in, G*H): row k gathers the gate gradients of every step that read token k.
            let mut table = Array2::<T>::zeros((grads.weight_ih.ncols(), gate_rows));
            for (row, &id) in x_grads.rows().into_iter().zip(ids.iter()) {
                table
                    .row_mut(id)
                    .zip_mut_with(&row, |acc, &g| *acc = *acc + g);
            }
            grads.weight_ih.assign(&table.t());
        }
    }
    matmul(
        grads.weight_hh.view_mut(),
        h_grads.t(),
        flat(tape.previous_states()),
        false,
    );
    if let Some(b) = grads.bias_ih.as_mut() {
        b.assign(&x_grads.sum_axis(Axis(0)));
    }
    if let Some(b) = grads.bias_hh.as_mut() {
        b.assign(&h_grads.sum_axis(Axis(0)));
    }
    if let Some(gx) = grad_input {
        assert!(
            matches!(input, LayerInput::Dense(_)),
            "token inputs have no gradient; callers refuse to ask for one"
        );
        matmul(gx, x_grads, params.weight_ih.view(), true);
    }
    if let Some(hg) = hidden_grads {
        workspace.recycle(hg);
    }
    tape.recycle(workspace);
    InitialStateGrads {
        h0: dh_carry,
        c0: dc_carry,
    }
}
