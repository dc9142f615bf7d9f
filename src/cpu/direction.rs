//! One direction of one layer over a whole sequence: forward with its tape, and BPTT.
//!
//! Laid out the way fast RNN code is: the input projection of all T steps is one matrix product,
//! the weight gradients are products over all T steps at once after the backward chain, and each
//! step is a product with W_hh plus one fused gate update, shared by a team of threads that each
//! own a block of hidden units (`team`): one barrier per step, no serial phase.
//!
//! Layouts are batch-major, as in oneDNN and cuDNN: gates (T, B, G*H), states and cells
//! (T+1, B, H). A step is one contiguous slab, so a thread's share of a step is, for each batch
//! row, one run of its own units per gate (which the gate loops vectorise, also for a single
//! stream), and the weight gradients are plain products with the (T*B, G*H) gate matrix. (Unit-
//! major gates, (G*H, T, B), put the rows of one step T*B floats apart: a power-of-two stride
//! that mapped every row to the same cache sets and left the gate loops waiting on memory.)
//! State buffers are indexed by time so that both directions read their previous states as
//! contiguous slabs: the forward direction reads slot t and writes t+1 (h0 in slot 0), the
//! reverse direction reads t+1 and writes t (h0 in slot T).
//!
//! Variable-length batches (PyTorch's packed sequences) are masked steps: at a step t at or past
//! row b's length, row b's state passes through unchanged and its gate gradients are zero. The
//! forward direction so ends on each row's own last state, and the reverse direction starts
//! each row at its own end, from h0.

use std::ops::Range;

use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis, s};

use super::step_product::StepWeights;
use super::team::{Shared, StepBarrier, Team};
use super::{Workspace, gru_cell, lstm_cell, rnn_cell};
use crate::Real;
use crate::conventions::Mode;
use crate::math::matmul::matmul;
use crate::math::simd;
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

/// (T, B, F) -> (T*B, F) of a contiguous view.
fn flat<T>(a: ArrayView3<'_, T>) -> ArrayView2<'_, T> {
    let (t, b, f) = a.dim();
    a.into_shape_with_order((t * b, f)).expect("contiguous")
}

/// (T, B, G*H) -> (T*B, G*H) of a contiguous buffer.
fn gate_matrix<T>(gates: &Array3<T>) -> ArrayView2<'_, T> {
    flat(gates.view())
}

fn contiguous<T>(a: &mut Array3<T>) -> &mut [T] {
    a.as_slice_mut().expect("workspace buffers are contiguous")
}

impl<T: Real> DirectionTape<T> {
    fn seq(&self) -> usize {
        self.gates.len_of(Axis(0))
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

/// The input projection of every step in one product, biases folded in where the cell allows.
/// Returns (T, B, G*H).
fn input_projection<T: Real>(
    mode: Mode,
    params: &CellParams<T>,
    input: LayerInput<'_, T>,
    workspace: &Workspace<T>,
) -> Array3<T> {
    let (seq, batch) = input.seq_batch();
    let gate_rows = params.weight_hh.nrows();
    let mut bias = Array1::<T>::zeros(gate_rows);
    if let Some(b) = &params.bias_ih {
        bias.assign(b);
    }
    // GRU keeps b_hn inside r * (...), so its hidden biases go with the per-step product.
    if let (Some(b), false) = (&params.bias_hh, mode == Mode::Gru) {
        bias.zip_mut_with(b, |acc, &v| *acc = *acc + v);
    }
    // Written whole: the bias first.
    let mut gates: Array3<T> = workspace.overwritable((seq, batch, gate_rows));
    let mut proj = gates
        .view_mut()
        .into_shape_with_order((seq * batch, gate_rows))
        .expect("contiguous");
    proj.assign(&bias);
    match input {
        LayerInput::Dense(x) => matmul(proj, flat(x), params.weight_ih.t(), true),
        LayerInput::Tokens(ids) => {
            // (I, G*H): row `id` is the projection of a one-hot `id`, contiguous.
            let columns = params.weight_ih.t().as_standard_layout().into_owned();
            for (mut row, &id) in proj.rows_mut().into_iter().zip(ids.iter()) {
                row.zip_mut_with(&columns.row(id), |p, &w| *p = *p + w);
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
    // Every step writes every batch row of its slot (a row past its end copies its state), and
    // the initial slot is written here, so none of these needs zeroing first.
    let mut states: Array3<T> = workspace.overwritable((seq + 1, batch, hidden));
    let mut cells = (mode == Mode::Lstm).then(|| workspace.overwritable((seq + 1, batch, hidden)));
    let mut tanh_cells = (mode == Mode::Lstm).then(|| workspace.overwritable((seq, batch, hidden)));
    let mut hidden_n = (mode == Mode::Gru).then(|| workspace.overwritable((seq, batch, hidden)));
    let h0_slot = if reverse { seq } else { 0 };
    states.index_axis_mut(Axis(0), h0_slot).assign(&h0);
    if let Some(c) = cells.as_mut() {
        let mut c_init = c.index_axis_mut(Axis(0), h0_slot);
        match c0 {
            Some(c0) => c_init.assign(&c0),
            None => c_init.fill(T::zero()),
        }
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

    fn gate_rows(&self) -> usize {
        self.gate_count() * self.hidden
    }

    /// Offset of (step t, batch row b, gate g of unit j) in a (T, B, G*H) buffer.
    fn gate_at(&self, t: usize, b: usize, g: usize, j: usize) -> usize {
        (t * self.batch + b) * self.gate_rows() + g * self.hidden + j
    }

    /// Offset of (slot, batch row b, unit j) in a (slots, B, H) buffer.
    fn state_at(&self, slot: usize, b: usize, j: usize) -> usize {
        (slot * self.batch + b) * self.hidden + j
    }
}

/// The forward pass's buffers, shared by the team: a party writes only its own units' rows.
struct ForwardBuffers<'a, T> {
    /// (T, B, G*H)
    gates: Shared<'a, T>,
    /// (T+1, B, H)
    states: Shared<'a, T>,
    /// (T+1, B, H)
    cells: Option<Shared<'a, T>>,
    /// (T, B, H)
    tanh_cells: Option<Shared<'a, T>>,
    /// (T, B, H)
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
    let own_weights = StepWeights::new(own_weights.t(), seq);
    // GRU keeps b_hh apart (b_hn sits inside r * (...)); the other cells fold it into the x part.
    // (G*units)
    let own_bias = params
        .bias_hh
        .as_ref()
        .filter(|_| mode == Mode::Gru)
        .map(|b| {
            (0..gate_count)
                .flat_map(|g| b.slice(s![own_rows(g)]).to_vec())
                .collect::<Array1<T>>()
        });
    // (B, G*units): this step's W_hh h (+ b_hh for GRU) for this party's units, contiguous.
    let mut hidden_proj = Array2::<T>::zeros((batch, gate_count * units.len()));
    let mut past_end = Vec::with_capacity(batch);
    for t in time_order(seq, reverse) {
        let (prev, _) = state_slots(t, reverse);
        // SAFETY: every party reads slot `prev` whole; it was written before the last barrier
        // and nobody writes it this step.
        let h_prev = unsafe {
            buffers
                .states
                .rows(shape.state_at(prev, 0, 0), batch, hidden, hidden)
        };
        match &own_bias {
            Some(bias) => {
                hidden_proj.assign(bias);
                own_weights.product(hidden_proj.view_mut(), h_prev, true);
            }
            None => own_weights.product(hidden_proj.view_mut(), h_prev, false),
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
    /// (B, G*units): this party's columns of W_hh h (+ b_hh for GRU).
    hidden_proj: &'s Array2<T>,
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
        let (mode, width) = (shape.mode, units.len());
        let (prev, next) = state_slots(t, shape.reverse);
        for (b, proj) in hidden_proj.rows().into_iter().enumerate() {
            let proj = proj.to_slice().expect("contiguous");
            // SAFETY: this party writes only its own units of step t and of slot `next`, and
            // reads slot `prev`, which nobody writes this step.
            unsafe {
                let gate = |g: usize| {
                    buffers
                        .gates
                        .slice_mut(shape.gate_at(t, b, g, units.start), width)
                };
                let proj_of = |g: usize| &proj[g * width..(g + 1) * width];
                let prev_at = shape.state_at(prev, b, units.start);
                let next_at = shape.state_at(next, b, units.start);
                let h_prev = buffers.states.slice(prev_at, width);
                let h_next = buffers.states.slice_mut(next_at, width);
                let ended = past_end.contains(&b);
                match mode {
                    Mode::RnnTanh | Mode::RnnRelu => {
                        rnn_cell::forward(gate(0), proj_of(0), h_next, mode == Mode::RnnRelu);
                    }
                    Mode::Lstm => {
                        let cells = buffers.cells.as_ref().expect("LSTM keeps cells");
                        let c_prev = cells.slice(prev_at, width);
                        let c_next = cells.slice_mut(next_at, width);
                        lstm_cell::forward(
                            [gate(0), gate(1), gate(2), gate(3)],
                            [proj_of(0), proj_of(1), proj_of(2), proj_of(3)],
                            c_prev,
                            c_next,
                            buffers
                                .tanh_cells
                                .as_ref()
                                .expect("LSTM keeps tanh(c)")
                                .slice_mut(shape.state_at(t, b, units.start), width),
                            h_next,
                        );
                        if ended {
                            c_next.copy_from_slice(c_prev);
                        }
                    }
                    Mode::Gru => {
                        gru_cell::forward(
                            [gate(0), gate(1), gate(2)],
                            [proj_of(0), proj_of(1), proj_of(2)],
                            h_prev,
                            buffers
                                .hidden_n
                                .as_ref()
                                .expect("GRU keeps h_n")
                                .slice_mut(shape.state_at(t, b, units.start), width),
                            h_next,
                        );
                    }
                }
                // A row past its end keeps its state.
                if ended {
                    h_next.copy_from_slice(h_prev);
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

/// What BPTT through one direction reads from outside its tape.
pub struct DirectionUpstream<'a, T> {
    /// (T, B, H), any strides: dLoss/d this direction's output
    pub grad_output: ArrayView3<'a, T>,
    /// (B, H)
    pub grad_h_n: ArrayView2<'a, T>,
    /// (B, H), LSTM only
    pub grad_c_n: Option<ArrayView2<'a, T>>,
    /// (B): those the forward pass ran with
    pub lengths: Option<&'a [usize]>,
}

/// BPTT through one direction. Consumes the tape (its gate buffer holds the gate gradients).
/// input: what the forward pass read; a token input has no input gradient (`grad_input` must be
/// `None`); grads: this cell's parameter gradients, overwritten; grad_input (T*B, in):
/// dLoss/d input, accumulated into when given.
pub fn backward<T: Real>(
    params: &CellParams<T>,
    mut tape: DirectionTape<T>,
    input: LayerInput<'_, T>,
    upstream: DirectionUpstream<'_, T>,
    grads: &mut CellParams<T>,
    grad_input: Option<ArrayViewMut2<'_, T>>,
    workspace: &Workspace<T>,
) -> InitialStateGrads<T> {
    let (seq, batch) = input.seq_batch();
    let hidden = params.weight_hh.ncols();
    let gate_rows = params.weight_hh.nrows();
    let mode = tape.mode;
    // GRU's gradients of the hidden projections differ from the input ones in the n block.
    // Written whole by the steps (zeros past a row's end).
    let mut hidden_grads =
        (mode == Mode::Gru).then(|| workspace.overwritable((seq, batch, gate_rows)));

    let shape = Shape {
        mode,
        reverse: tape.reverse,
        seq,
        batch,
        hidden,
    };
    let team = Team::for_recurrence(hidden, seq * batch * params.weight_hh.len());
    let carries = {
        let buffers = BackwardBuffers {
            gates: Shared::new(contiguous(&mut tape.gates)),
            hidden_grads: hidden_grads.as_mut().map(|g| Shared::new(contiguous(g))),
            states: tape.states.view(),
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
        initial.h0.slice_mut(s![.., units.clone()]).assign(&dh);
        if let (Some(c0), Some(dc)) = (initial.c0.as_mut(), dc) {
            c0.slice_mut(s![.., units]).assign(&dc);
        }
    }

    // Parameter gradients: products over all T steps at once. (T*B, G*H) each.
    let x_grads = gate_matrix(&tape.gates);
    let h_grads = hidden_grads.as_ref().map_or(x_grads.view(), gate_matrix);
    match input {
        LayerInput::Dense(x) => matmul(grads.weight_ih.view_mut(), x_grads.t(), flat(x), false),
        LayerInput::Tokens(ids) => {
            // Column `id` sums the gate gradients of every step that read token `id`; rows of
            // a transposed (I, G*H) sum keep the adds contiguous.
            let mut columns = Array2::<T>::zeros(grads.weight_ih.t().dim());
            for (g, &id) in x_grads.rows().into_iter().zip(ids.iter()) {
                columns.row_mut(id).zip_mut_with(&g, |c, &v| *c = *c + v);
            }
            grads.weight_ih.assign(&columns.t());
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
    initial
}

/// BPTT's buffers: the gate gradients are shared by the team, the forward tape is read-only.
struct BackwardBuffers<'a, T> {
    /// (T, B, G*H): activated gates in, their gradients out.
    gates: Shared<'a, T>,
    /// (T, B, G*H): GRU's gradients of the hidden projections.
    hidden_grads: Option<Shared<'a, T>>,
    /// (T+1, B, H)
    states: ArrayView3<'a, T>,
    /// (T+1, B, H)
    cells: Option<ArrayView3<'a, T>>,
    /// (T, B, H)
    tanh_cells: Option<ArrayView3<'a, T>>,
    /// (T, B, H)
    hidden_n: Option<ArrayView3<'a, T>>,
}

/// A contiguous run of a read-only tape buffer: (slot, batch row b, units).
fn tape_run<'a, T>(
    buffer: &'a ArrayView3<'_, T>,
    slot: usize,
    b: usize,
    units: &Range<usize>,
) -> &'a [T] {
    buffer
        .slice(s![slot, b, units.clone()])
        .to_slice()
        .expect("tape buffers are contiguous")
}

/// One party's share of BPTT over hidden units `units`. Returns the gradients that leave its
/// units through the initial state: dh0 and, for LSTM, dc0, each (B, units).
fn backward_steps<T: Real>(
    shape: &Shape,
    params: &CellParams<T>,
    buffers: &BackwardBuffers<'_, T>,
    upstream: &DirectionUpstream<'_, T>,
    units: Range<usize>,
    barrier: &StepBarrier,
) -> (Array2<T>, Option<Array2<T>>) {
    let Shape {
        mode,
        reverse,
        batch,
        ..
    } = *shape;
    let gate_rows = shape.gate_rows();
    // (rows, H) -> (rows, units): this party's columns, contiguous.
    let own_units = |g: ArrayView2<'_, T>| g.slice(s![.., units.clone()]).to_owned();
    // (G*H, units): this party's columns of W_hh, for the per-step product.
    let own_columns = params.weight_hh.slice(s![.., units.clone()]);
    let own_columns = StepWeights::new(own_columns, shape.seq);
    // dLoss/dh and dLoss/dc carried to the previous step, (B, units), this party's own.
    let mut dh_carry = own_units(upstream.grad_h_n);
    let mut dc_carry = (mode == Mode::Lstm).then(|| match upstream.grad_c_n {
        Some(g) => own_units(g),
        None => Array2::zeros((batch, units.len())),
    });
    let mut dh = Array2::<T>::zeros((batch, units.len()));
    // Rows past their end at the current step: the gradients they carry, kept aside.
    let mut held_dh = Array2::<T>::zeros((batch, units.len()));
    let mut held_dc = Array2::<T>::zeros((batch, units.len()));
    let mut past_end = Vec::with_capacity(batch);
    for t in time_order(shape.seq, !reverse) {
        rows_past_end(upstream.lengths, t, &mut past_end);
        for &b in &past_end {
            held_dh.row_mut(b).assign(&dh_carry.row(b));
            if let Some(dc) = &dc_carry {
                held_dc.row_mut(b).assign(&dc.row(b));
            }
        }
        // dLoss/dh_t: from the output at t and from step t+1 through W_hh
        let grad_out = upstream
            .grad_output
            .index_axis(Axis(0), t)
            .slice_move(s![.., units.clone()]);
        ndarray::Zip::from(&mut dh)
            .and(grad_out)
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
        // (B, G*H)
        let step_grads =
            unsafe { step_grads.rows(shape.gate_at(t, 0, 0, 0), batch, gate_rows, gate_rows) };
        own_columns.product(dh_carry.view_mut(), step_grads, mode == Mode::Gru);
        // ... and a step past a row's end passes the gradients through unchanged.
        for &b in &past_end {
            dh_carry.row_mut(b).assign(&held_dh.row(b));
            if let Some(dc) = dc_carry.as_mut() {
                dc.row_mut(b).assign(&held_dc.row(b));
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
    /// (B, units): dLoss/dh_t
    dh: &'s Array2<T>,
    /// (B, units): GRU writes the part of dLoss/dh_{t-1} that bypasses W_hh here.
    dh_carry: &'s mut Array2<T>,
    /// (B, units): LSTM's dLoss/dc, carried across steps.
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
        let (mode, width) = (shape.mode, units.len());
        let (prev, _) = state_slots(t, shape.reverse);
        for (b, dh_row) in dh.rows().into_iter().enumerate() {
            let dh_row = dh_row.to_slice().expect("contiguous");
            // SAFETY: this party writes only its own units of step t before the barrier.
            unsafe {
                let grad_run = |g: usize| {
                    buffers
                        .gates
                        .slice_mut(shape.gate_at(t, b, g, units.start), width)
                };
                let hidden_run = |g: usize| {
                    buffers
                        .hidden_grads
                        .as_ref()
                        .map(|h| h.slice_mut(shape.gate_at(t, b, g, units.start), width))
                };
                // A step past a row's end was a copy of its state: its gates get no gradient.
                if past_end.contains(&b) {
                    for g in 0..shape.gate_count() {
                        grad_run(g).fill(T::zero());
                        if let Some(run) = hidden_run(g) {
                            run.fill(T::zero());
                        }
                    }
                    continue;
                }
                match mode {
                    Mode::RnnTanh | Mode::RnnRelu => {
                        rnn_cell::backward(grad_run(0), dh_row, mode == Mode::RnnRelu);
                    }
                    Mode::Lstm => {
                        let cells = buffers.cells.as_ref().expect("LSTM keeps cells");
                        let tanh_c = buffers.tanh_cells.as_ref().expect("LSTM keeps tanh(c)");
                        let dc = dc_carry.as_mut().expect("LSTM carries dc").row_mut(b);
                        lstm_cell::backward(
                            [grad_run(0), grad_run(1), grad_run(2), grad_run(3)],
                            tape_run(tanh_c, t, b, &units),
                            tape_run(cells, prev, b, &units),
                            dh_row,
                            dc.into_slice().expect("contiguous"),
                        );
                    }
                    Mode::Gru => {
                        let hidden_run = |g: usize| hidden_run(g).expect("GRU keeps them");
                        gru_cell::backward(
                            [grad_run(0), grad_run(1), grad_run(2)],
                            [hidden_run(0), hidden_run(1), hidden_run(2)],
                            tape_run(
                                buffers.hidden_n.as_ref().expect("GRU keeps h_n"),
                                t,
                                b,
                                &units,
                            ),
                            tape_run(&buffers.states, prev, b, &units),
                            dh_row,
                            dh_carry.row_mut(b).into_slice().expect("contiguous"),
                        );
                    }
                }
            }
        }
    }
}
