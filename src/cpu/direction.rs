//! One direction of one layer over a whole sequence: forward with its tape, and BPTT.
//!
//! Laid out the way fast RNN code is: the input projection of all T steps is one matrix product,
//! the weight gradients are products over all T steps at once after the backward chain, and each
//! step is a product with W_hh plus one fused gate update, shared by a team of threads that each
//! own a block of hidden units (`team`): one barrier per step, no serial phase.
//!
//! Layouts. Gates are unit-major, (G*H, T, B): one gate row of one unit holds every step's batch
//! contiguously, so a thread's share of a step is whole runs of B values and the weight
//! gradients are plain (G*H, T*B) products. Hidden states are kept twice: unit-major (T+1, H, B),
//! the per-step product's operand and the gate updates' input, and batch-major (T+1, B, H), the
//! layer's output and dW_hh's operand. Both are indexed by time so that both directions read
//! their previous states as contiguous slabs: the forward direction reads slot t and writes t+1
//! (h0 in slot 0), the reverse direction reads t+1 and writes t (h0 in slot T).
//!
//! Variable-length batches (PyTorch's packed sequences) are masked steps: at a step t at or past
//! row b's length, row b's state passes through unchanged and its gate gradients are zero. The
//! forward direction so ends on each row's own last state, and the reverse direction starts
//! each row at its own end, from h0.

use std::ops::Range;

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis, s};

use super::matmul::{matmul, matmul_serial};
use super::team::{Shared, StepBarrier, Team};
use super::{Real, Workspace, gru_cell, lstm_cell, rnn_cell, simd};
use crate::conventions::Mode;
use crate::params::CellParams;

/// What one direction of one layer keeps from its forward pass for BPTT.
pub struct DirectionTape<T> {
    mode: Mode,
    reverse: bool,
    /// (G*H, T, B): activated gates of every step; reused in place for their gradients.
    gates: Array3<T>,
    /// (T+1, B, H): hidden states, batch-major, time-indexed as the module comment says.
    states: Array3<T>,
    /// (T+1, H, B): the same states, unit-major.
    unit_states: Array3<T>,
    /// (T+1, H, B): LSTM cell states, unit-major, indexed like `states`.
    cells: Option<Array3<T>>,
    /// (T, H, B): tanh of each new LSTM cell state.
    tanh_cells: Option<Array3<T>>,
    /// (T, H, B): GRU's W_hn h + b_hn of every step.
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

/// Writes into `past_end` the batch rows whose sequence has ended by time `t`; none without
/// lengths.
fn rows_past_end(lengths: Option<&[usize]>, t: usize, past_end: &mut Vec<usize>) {
    past_end.clear();
    let lengths = lengths.unwrap_or(&[]);
    past_end.extend((0..lengths.len()).filter(|&b| t >= lengths[b]));
}

/// Slots (previous, next) of the state buffers at time `t`.
fn state_slots(t: usize, reverse: bool) -> (usize, usize) {
    if reverse { (t + 1, t) } else { (t, t + 1) }
}

/// The time steps in the order a pass visits them.
fn time_order(seq: usize, backwards: bool) -> Box<dyn Iterator<Item = usize>> {
    if backwards {
        Box::new((0..seq).rev())
    } else {
        Box::new(0..seq)
    }
}

/// (T, B) token ids -> (T*B) in step-major order, the column order of a (G*H, T*B) gate matrix.
fn step_major(ids: ArrayView2<'_, usize>) -> Vec<usize> {
    ids.iter().copied().collect()
}

/// (T, B, F) -> (T*B, F) of a contiguous view.
fn flat<T>(a: ArrayView3<'_, T>) -> ArrayView2<'_, T> {
    let (t, b, f) = a.dim();
    a.into_shape_with_order((t * b, f)).expect("contiguous")
}

/// (G*H, T, B) -> (G*H, T*B) of a contiguous view.
fn gate_matrix<T>(gates: &Array3<T>) -> ArrayView2<'_, T> {
    let (rows, t, b) = gates.dim();
    gates
        .view()
        .into_shape_with_order((rows, t * b))
        .expect("contiguous")
}

fn contiguous<T>(a: &mut Array3<T>) -> &mut [T] {
    a.as_slice_mut().expect("workspace buffers are contiguous")
}

impl<T: Real> DirectionTape<T> {
    fn seq(&self) -> usize {
        self.gates.len_of(Axis(1))
    }

    /// (T, B, H): the direction's output at every time step.
    pub fn outputs(&self) -> ArrayView3<'_, T> {
        let t = self.seq();
        if self.reverse {
            self.states.slice(s![..t, .., ..])
        } else {
            self.states.slice(s![1.., .., ..])
        }
    }

    /// (T, B, H): the state each step started from.
    fn previous_states(&self) -> ArrayView3<'_, T> {
        let t = self.seq();
        if self.reverse {
            self.states.slice(s![1.., .., ..])
        } else {
            self.states.slice(s![..t, .., ..])
        }
    }

    fn final_slot(&self) -> usize {
        if self.reverse { 0 } else { self.seq() }
    }

    /// (B, H): h after the last step this direction took.
    pub fn final_hidden(&self) -> ArrayView2<'_, T> {
        self.states.index_axis(Axis(0), self.final_slot())
    }

    /// (B, H): LSTM's c after the last step (a transposed view of the unit-major buffer).
    pub fn final_cell(&self) -> Option<ArrayView2<'_, T>> {
        let slot = self.final_slot();
        self.cells
            .as_ref()
            .map(|c| c.index_axis(Axis(0), slot).reversed_axes())
    }

    /// Hands every buffer back to the workspace.
    pub fn recycle(self, workspace: &Workspace<T>) {
        workspace.recycle(self.gates);
        workspace.recycle(self.states);
        workspace.recycle(self.unit_states);
        for buffer in [self.cells, self.tanh_cells, self.hidden_n]
            .into_iter()
            .flatten()
        {
            workspace.recycle(buffer);
        }
    }
}

/// The input projection of every step in one product, biases folded in where the cell allows.
/// Returns (G*H, T, B).
fn input_projection<T: Real>(
    mode: Mode,
    params: &CellParams<T>,
    input: LayerInput<'_, T>,
    workspace: &Workspace<T>,
) -> Array3<T> {
    let (seq, batch) = input.seq_batch();
    let gate_rows = params.weight_hh.nrows();
    let mut bias = Array2::<T>::zeros((gate_rows, 1));
    if let Some(b) = &params.bias_ih {
        bias.column_mut(0).assign(b);
    }
    // GRU keeps b_hn inside r * (...), so its hidden biases go with the per-step product.
    if let (Some(b), false) = (&params.bias_hh, mode == Mode::Gru) {
        bias.column_mut(0)
            .zip_mut_with(b, |acc, &v| *acc = *acc + v);
    }
    let mut gates: Array3<T> = workspace.zeros((gate_rows, seq, batch));
    let mut proj = gates
        .view_mut()
        .into_shape_with_order((gate_rows, seq * batch))
        .expect("contiguous");
    proj.assign(&bias);
    match input {
        LayerInput::Dense(x) => matmul(proj, params.weight_ih.view(), flat(x).t(), true),
        LayerInput::Tokens(ids) => {
            let ids = step_major(ids);
            for (mut row, weights) in proj.rows_mut().into_iter().zip(params.weight_ih.rows()) {
                let row = row.as_slice_mut().expect("contiguous");
                for (p, &id) in row.iter_mut().zip(&ids) {
                    *p = *p + weights[id];
                }
            }
        }
    }
    gates
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
    let mut gates = input_projection(mode, params, input, workspace);
    let mut states: Array3<T> = workspace.zeros((seq + 1, batch, hidden));
    let mut unit_states: Array3<T> = workspace.zeros((seq + 1, hidden, batch));
    let mut cells = (mode == Mode::Lstm).then(|| workspace.zeros((seq + 1, hidden, batch)));
    let mut tanh_cells = (mode == Mode::Lstm).then(|| workspace.zeros((seq, hidden, batch)));
    let mut hidden_n = (mode == Mode::Gru).then(|| workspace.zeros((seq, hidden, batch)));
    let h0_slot = if reverse { seq } else { 0 };
    states.index_axis_mut(Axis(0), h0_slot).assign(&h0);
    unit_states.index_axis_mut(Axis(0), h0_slot).assign(&h0.t());
    if let (Some(c), Some(c0)) = (cells.as_mut(), c0) {
        c.index_axis_mut(Axis(0), h0_slot).assign(&c0.t());
    }

    let shape = Shape {
        mode,
        reverse,
        seq,
        batch,
        hidden,
    };
    let buffers = ForwardBuffers {
        gates: Shared::new(contiguous(&mut gates)),
        states: Shared::new(contiguous(&mut states)),
        unit_states: Shared::new(contiguous(&mut unit_states)),
        cells: cells.as_mut().map(|c| Shared::new(contiguous(c))),
        tanh_cells: tanh_cells.as_mut().map(|c| Shared::new(contiguous(c))),
        hidden_n: hidden_n.as_mut().map(|c| Shared::new(contiguous(c))),
    };
    let team = Team::for_recurrence(hidden, seq * batch * params.weight_hh.len());
    team.run(|party, barrier| {
        forward_steps(
            &shape,
            params,
            &buffers,
            team.units(party),
            barrier,
            lengths,
        )
    });
    DirectionTape {
        mode,
        reverse,
        gates,
        states,
        unit_states,
        cells,
        tanh_cells,
        hidden_n,
    }
}

/// The sizes one recurrence runs over.
struct Shape {
    mode: Mode,
    reverse: bool,
    seq: usize,
    batch: usize,
    hidden: usize,
}

impl Shape {
    fn gate_count(&self) -> usize {
        self.mode.gate_count()
    }

    /// Offset of (unit row `row`, step t) in a (G*H, T, B) buffer.
    fn gate_at(&self, row: usize, t: usize) -> usize {
        (row * self.seq + t) * self.batch
    }

    /// Offset of (slot, unit j) in a (slots, H, B) buffer.
    fn unit_at(&self, slot: usize, j: usize) -> usize {
        (slot * self.hidden + j) * self.batch
    }
}

/// The forward pass's buffers, shared by the team: a party writes only its own units' rows.
struct ForwardBuffers<'a, T> {
    /// (G*H, T, B)
    gates: Shared<'a, T>,
    /// (T+1, B, H)
    states: Shared<'a, T>,
    /// (T+1, H, B)
    unit_states: Shared<'a, T>,
    /// (T+1, H, B)
    cells: Option<Shared<'a, T>>,
    /// (T, H, B)
    tanh_cells: Option<Shared<'a, T>>,
    /// (T, H, B)
    hidden_n: Option<Shared<'a, T>>,
}

/// One party's share of the forward pass: the steps of hidden units `units`.
fn forward_steps<T: Real>(
    shape: &Shape,
    params: &CellParams<T>,
    buffers: &ForwardBuffers<'_, T>,
    units: Range<usize>,
    barrier: &StepBarrier,
    lengths: Option<&[usize]>,
) {
    let Shape {
        mode,
        reverse,
        seq,
        batch,
        hidden,
    } = *shape;
    let gate_count = shape.gate_count();
    let own_rows = |g: usize| g * hidden + units.start..g * hidden + units.end;
    // (G*units, H): this party's rows of W_hh, gathered once so each step is one product (a
    // lone party's rows are W_hh itself, which a one-step stream must not copy).
    let gathered;
    let own_weights = if units.len() == hidden {
        params.weight_hh.view()
    } else {
        let mut rows = Array2::<T>::zeros((gate_count * units.len(), hidden));
        for (g, mut block) in rows
            .axis_chunks_iter_mut(Axis(0), units.len().max(1))
            .enumerate()
        {
            block.assign(&params.weight_hh.slice(s![own_rows(g), ..]));
        }
        gathered = rows;
        gathered.view()
    };
    // GRU keeps b_hh apart (b_hn sits inside r * (...)); the other cells fold it into the x part.
    let own_bias = params
        .bias_hh
        .as_ref()
        .filter(|_| mode == Mode::Gru)
        .map(|b| {
            let rows: Vec<T> = (0..gate_count)
                .flat_map(|g| b.slice(s![own_rows(g)]).to_vec())
                .collect();
            Array2::from_shape_vec((rows.len(), 1), rows).expect("one bias per row")
        });
    // (G, units, B): this step's W_hh h (+ b_hh for GRU) for this party's units, contiguous
    // (the gate buffer's rows are T*B apart, a stride that thrashes the cache in a product).
    let mut hidden_proj = Array3::<T>::zeros((gate_count, units.len(), batch));
    let mut past_end = Vec::with_capacity(batch);
    for t in time_order(seq, reverse) {
        let (prev, _) = state_slots(t, reverse);
        // SAFETY: every party reads slot `prev` whole; it was written before the last barrier
        // and nobody writes it this step.
        let h_prev = unsafe {
            buffers
                .unit_states
                .rows(shape.unit_at(prev, 0), hidden, batch, batch)
        };
        let out = hidden_proj
            .view_mut()
            .into_shape_with_order((gate_count * units.len(), batch))
            .expect("contiguous");
        match &own_bias {
            Some(bias) => {
                let mut out = out;
                out.assign(bias);
                matmul_serial(out, own_weights, h_prev, true);
            }
            None => matmul_serial(out, own_weights, h_prev, false),
        }
        rows_past_end(lengths, t, &mut past_end);
        simd::run(ForwardUpdates {
            shape,
            buffers,
            hidden_proj: &hidden_proj,
            units: units.clone(),
            t,
            past_end: &past_end,
        });
        barrier.wait();
    }
}

/// The gate updates of one party's units at one step of the forward pass.
struct ForwardUpdates<'s, 'a, T> {
    shape: &'s Shape,
    buffers: &'s ForwardBuffers<'a, T>,
    /// (G, units, B): this party's rows of W_hh h (+ b_hh for GRU).
    hidden_proj: &'s Array3<T>,
    units: Range<usize>,
    t: usize,
    past_end: &'s [usize],
}

impl<T: Real> simd::Kernel for ForwardUpdates<'_, '_, T> {
    #[inline(always)]
    fn run(self) {
        let ForwardUpdates {
            shape,
            buffers,
            hidden_proj,
            units,
            t,
            past_end,
        } = self;
        let (mode, batch, hidden) = (shape.mode, shape.batch, shape.hidden);
        let (prev, next) = state_slots(t, shape.reverse);
        for j in units.clone() {
            // SAFETY: this party writes only its own units' rows of step t and slot `next`.
            unsafe {
                let gate_row = |g: usize| {
                    buffers
                        .gates
                        .slice_mut(shape.gate_at(g * hidden + j, t), batch)
                };
                let local = j - units.start;
                let proj_row = |g: usize| {
                    hidden_proj
                        .slice(s![g, local, ..])
                        .to_slice()
                        .expect("contiguous")
                };
                let h_prev = buffers.unit_states.slice(shape.unit_at(prev, j), batch);
                let h_next = buffers.unit_states.slice_mut(shape.unit_at(next, j), batch);
                match mode {
                    Mode::RnnTanh | Mode::RnnRelu => {
                        rnn_cell::forward(gate_row(0), proj_row(0), h_next, mode == Mode::RnnRelu);
                    }
                    Mode::Lstm => {
                        let cells = buffers.cells.as_ref().expect("LSTM keeps cells");
                        let c_prev = cells.slice(shape.unit_at(prev, j), batch);
                        let c_next = cells.slice_mut(shape.unit_at(next, j), batch);
                        lstm_cell::forward(
                            [gate_row(0), gate_row(1), gate_row(2), gate_row(3)],
                            [proj_row(0), proj_row(1), proj_row(2), proj_row(3)],
                            c_prev,
                            c_next,
                            buffers
                                .tanh_cells
                                .as_ref()
                                .expect("LSTM keeps tanh(c)")
                                .slice_mut(shape.unit_at(t, j), batch),
                            h_next,
                        );
                        for &b in past_end {
                            c_next[b] = c_prev[b];
                        }
                    }
                    Mode::Gru => {
                        gru_cell::forward(
                            [gate_row(0), gate_row(1), gate_row(2)],
                            [proj_row(0), proj_row(1), proj_row(2)],
                            h_prev,
                            buffers
                                .hidden_n
                                .as_ref()
                                .expect("GRU keeps h_n")
                                .slice_mut(shape.unit_at(t, j), batch),
                            h_next,
                        );
                    }
                }
                for &b in past_end {
                    h_next[b] = h_prev[b];
                }
                for (b, &h) in h_next.iter().enumerate() {
                    buffers.states.write((next * batch + b) * hidden + j, h);
                }
            }
        }
    }
}

/// Gradients that leave one direction through its initial state.
pub struct InitialStateGrads<T> {
    /// (B, H)
    pub h0: Array2<T>,
    /// (B, H), LSTM only
    pub c0: Option<Array2<T>>,
}

/// What BPTT reads from outside the tape.
struct Upstream<'a, T> {
    /// (T, B, H), any strides
    grad_output: ArrayView3<'a, T>,
    /// (B, H)
    grad_h_n: ArrayView2<'a, T>,
    /// (B, H)
    grad_c_n: Option<ArrayView2<'a, T>>,
    lengths: Option<&'a [usize]>,
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
    // GRU's gradients of the hidden projections differ from the input ones in the n block.
    let mut hidden_grads = (mode == Mode::Gru).then(|| workspace.zeros((gate_rows, seq, batch)));

    let shape = Shape {
        mode,
        reverse: tape.reverse,
        seq,
        batch,
        hidden,
    };
    let upstream = Upstream {
        grad_output,
        grad_h_n,
        grad_c_n,
        lengths,
    };
    let team = Team::for_recurrence(hidden, seq * batch * params.weight_hh.len());
    let carries = {
        let buffers = BackwardBuffers {
            gates: Shared::new(contiguous(&mut tape.gates)),
            hidden_grads: hidden_grads.as_mut().map(|g| Shared::new(contiguous(g))),
            unit_states: tape.unit_states.view(),
            cells: tape.cells.as_ref().map(|c| c.view()),
            tanh_cells: tape.tanh_cells.as_ref().map(|c| c.view()),
            hidden_n: tape.hidden_n.as_ref().map(|c| c.view()),
        };
        team.run(|party, barrier| {
            backward_steps(
                &shape,
                params,
                &buffers,
                &upstream,
                team.units(party),
                barrier,
            )
        })
    };
    let mut initial = InitialStateGrads {
        h0: Array2::zeros((batch, hidden)),
        c0: (mode == Mode::Lstm).then(|| Array2::zeros((batch, hidden))),
    };
    for (party, (dh, dc)) in carries.into_iter().enumerate() {
        let units = team.units(party);
        initial.h0.slice_mut(s![.., units.clone()]).assign(&dh.t());
        if let (Some(c0), Some(dc)) = (initial.c0.as_mut(), dc) {
            c0.slice_mut(s![.., units]).assign(&dc.t());
        }
    }

    // Parameter gradients: products over all T steps at once.
    let x_grads = gate_matrix(&tape.gates);
    let h_grads = hidden_grads.as_ref().map_or(x_grads.view(), gate_matrix);
    match input {
        LayerInput::Dense(x) => matmul(grads.weight_ih.view_mut(), x_grads, flat(x), false),
        LayerInput::Tokens(ids) => {
            // Row r gathers the gradients of gate row r at every step that read each token.
            let ids = step_major(ids);
            grads.weight_ih.fill(T::zero());
            for (mut row, g) in grads.weight_ih.rows_mut().into_iter().zip(x_grads.rows()) {
                let g = g.to_slice().expect("contiguous");
                for (&id, &v) in ids.iter().zip(g) {
                    row[id] = row[id] + v;
                }
            }
        }
    }
    matmul(
        grads.weight_hh.view_mut(),
        h_grads,
        flat(tape.previous_states()),
        false,
    );
    if let Some(b) = grads.bias_ih.as_mut() {
        b.assign(&x_grads.sum_axis(Axis(1)));
    }
    if let Some(b) = grads.bias_hh.as_mut() {
        b.assign(&h_grads.sum_axis(Axis(1)));
    }
    if let Some(gx) = grad_input {
        assert!(
            matches!(input, LayerInput::Dense(_)),
            "token inputs have no gradient; callers refuse to ask for one"
        );
        matmul(gx, x_grads.t(), params.weight_ih.view(), true);
    }
    if let Some(hg) = hidden_grads {
        workspace.recycle(hg);
    }
    tape.recycle(workspace);
    initial
}

/// BPTT's buffers: the gate gradients are shared by the team, the forward tape is read-only.
struct BackwardBuffers<'a, T> {
    /// (G*H, T, B): activated gates in, their gradients out.
    gates: Shared<'a, T>,
    /// (G*H, T, B): GRU's gradients of the hidden projections.
    hidden_grads: Option<Shared<'a, T>>,
    /// (T+1, H, B)
    unit_states: ArrayView3<'a, T>,
    /// (T+1, H, B)
    cells: Option<ArrayView3<'a, T>>,
    /// (T, H, B)
    tanh_cells: Option<ArrayView3<'a, T>>,
    /// (T, H, B)
    hidden_n: Option<ArrayView3<'a, T>>,
}

/// A contiguous row of a read-only tape buffer: (slot, unit j), B long.
fn tape_row<'a, T>(buffer: &'a ArrayView3<'_, T>, slot: usize, j: usize) -> &'a [T] {
    buffer
        .slice(s![slot, j, ..])
        .to_slice()
        .expect("tape buffers are contiguous")
}

/// One party's share of BPTT over hidden units `units`. Returns the gradients that leave its
/// units through the initial state: dh0 and, for LSTM, dc0, each (units, B).
fn backward_steps<T: Real>(
    shape: &Shape,
    params: &CellParams<T>,
    buffers: &BackwardBuffers<'_, T>,
    upstream: &Upstream<'_, T>,
    units: Range<usize>,
    barrier: &StepBarrier,
) -> (Array2<T>, Option<Array2<T>>) {
    let Shape {
        mode,
        reverse,
        seq,
        batch,
        hidden,
    } = *shape;
    let gate_rows = shape.gate_count() * hidden;
    // (rows, H) -> (units, rows): this party's columns, transposed and contiguous.
    let own_units = |g: ArrayView2<'_, T>| {
        g.slice(s![.., units.clone()])
            .t()
            .as_standard_layout()
            .into_owned()
    };
    // (units, G*H): this party's rows of W_hh^T, contiguous for the per-step product.
    let weights_t = own_units(params.weight_hh.view());
    // dLoss/dh and dLoss/dc carried to the previous step, (units, B), this party's own.
    let mut dh_carry = own_units(upstream.grad_h_n);
    let mut dc_carry = (mode == Mode::Lstm).then(|| match upstream.grad_c_n {
        Some(g) => own_units(g),
        None => Array2::zeros((units.len(), batch)),
    });
    let mut dh = Array2::<T>::zeros((units.len(), batch));
    // Rows past their end at the current step: the gradients they carry, kept aside.
    let mut held_dh = Array2::<T>::zeros((units.len(), batch));
    let mut held_dc = Array2::<T>::zeros((units.len(), batch));
    let mut past_end = Vec::with_capacity(batch);
    for t in time_order(seq, !reverse) {
        rows_past_end(upstream.lengths, t, &mut past_end);
        for &b in &past_end {
            held_dh.column_mut(b).assign(&dh_carry.column(b));
            if let Some(dc) = &dc_carry {
                held_dc.column_mut(b).assign(&dc.column(b));
            }
        }
        // dLoss/dh_t: from the output at t and from step t+1 through W_hh
        let grad_out = upstream
            .grad_output
            .index_axis(Axis(0), t)
            .slice_move(s![.., units.clone()]);
        ndarray::Zip::from(&mut dh)
            .and(grad_out.t())
            .and(&dh_carry)
            .for_each(|d, &g, &c| *d = g + c);
        simd::run(BackwardUpdates {
            shape,
            buffers,
            units: units.clone(),
            t,
            past_end: &past_end,
            dh: &dh,
            dh_carry: &mut dh_carry,
            dc_carry: dc_carry.as_mut(),
        });
        barrier.wait();
        // dLoss/dh_{t-1} of this party's units through W_hh, from every unit's gate gradients;
        // GRU adds it to the direct part z * dh the cell wrote.
        let step_grads = buffers.hidden_grads.as_ref().unwrap_or(&buffers.gates);
        // SAFETY: every party finished writing step t before the barrier; none writes it again.
        let step_grads =
            unsafe { step_grads.rows(shape.gate_at(0, t), gate_rows, batch, seq * batch) };
        matmul_serial(
            dh_carry.view_mut(),
            weights_t.view(),
            step_grads,
            mode == Mode::Gru,
        );
        // ... and a step past a row's end passes the gradients through unchanged.
        for &b in &past_end {
            dh_carry.column_mut(b).assign(&held_dh.column(b));
            if let Some(dc) = dc_carry.as_mut() {
                dc.column_mut(b).assign(&held_dc.column(b));
            }
        }
    }
    (dh_carry, dc_carry)
}

/// The gate backward of one party's units at one step of BPTT.
struct BackwardUpdates<'s, 'a, T> {
    shape: &'s Shape,
    buffers: &'s BackwardBuffers<'a, T>,
    units: Range<usize>,
    t: usize,
    past_end: &'s [usize],
    /// (units, B): dLoss/dh_t
    dh: &'s Array2<T>,
    /// (units, B): GRU writes the part of dLoss/dh_{t-1} that bypasses W_hh here.
    dh_carry: &'s mut Array2<T>,
    /// (units, B): LSTM's dLoss/dc, carried across steps.
    dc_carry: Option<&'s mut Array2<T>>,
}

impl<T: Real> simd::Kernel for BackwardUpdates<'_, '_, T> {
    #[inline(always)]
    fn run(self) {
        let BackwardUpdates {
            shape,
            buffers,
            units,
            t,
            past_end,
            dh,
            dh_carry,
            mut dc_carry,
        } = self;
        let (mode, batch, hidden) = (shape.mode, shape.batch, shape.hidden);
        let (prev, _) = state_slots(t, shape.reverse);
        for (local, j) in units.clone().enumerate() {
            unsafe {
                // SAFETY: this party writes only its own units' rows of step t before the barrier.
                let grad_row = |g: usize| {
                    buffers
                        .gates
                        .slice_mut(shape.gate_at(g * hidden + j, t), batch)
                };
                let dh_row = dh.row(local).to_slice().expect("contiguous");
                match mode {
                    Mode::RnnTanh | Mode::RnnRelu => {
                        rnn_cell::backward(grad_row(0), dh_row, mode == Mode::RnnRelu);
                    }
                    Mode::Lstm => {
                        let cells = buffers.cells.as_ref().expect("LSTM keeps cells");
                        let tanh_c = buffers.tanh_cells.as_ref().expect("LSTM keeps tanh(c)");
                        let dc = dc_carry.as_mut().expect("LSTM carries dc").row_mut(local);
                        lstm_cell::backward(
                            [grad_row(0), grad_row(1), grad_row(2), grad_row(3)],
                            tape_row(tanh_c, t, j),
                            tape_row(cells, prev, j),
                            dh_row,
                            dc.into_slice().expect("contiguous"),
                        );
                    }
                    Mode::Gru => {
                        let hidden_grads = buffers.hidden_grads.as_ref().expect("GRU keeps them");
                        let hidden_row = |g: usize| {
                            hidden_grads.slice_mut(shape.gate_at(g * hidden + j, t), batch)
                        };
                        gru_cell::backward(
                            [grad_row(0), grad_row(1), grad_row(2)],
                            [hidden_row(0), hidden_row(1), hidden_row(2)],
                            tape_row(buffers.hidden_n.as_ref().expect("GRU keeps h_n"), t, j),
                            tape_row(&buffers.unit_states, prev, j),
                            dh_row,
                            dh_carry.row_mut(local).into_slice().expect("contiguous"),
                        );
                    }
                }
                // A step past a row's end was a copy of its state: its gates get no gradient.
                for &b in past_end {
                    for g in 0..shape.gate_count() {
                        grad_row(g)[b] = T::zero();
                        if let Some(hidden_grads) = &buffers.hidden_grads {
                            hidden_grads.slice_mut(shape.gate_at(g * hidden + j, t), batch)[b] =
                                T::zero();
                        }
                    }
                }
            }
        }
    }
}
