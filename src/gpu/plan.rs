//! The host scheduler: for one model and one (T, B), every activation buffer, uniform and bind
//! group is made once; a forward, or a forward + BPTT, is then recorded into one command encoder
//! with no allocation: one dispatch per layer, direction and time step forward, two backward.
//!
//! States are time-indexed as on the CPU path (`cpu::direction`): (T+1, B, H) slots, the forward
//! direction reading slot t and writing t+1, the reverse direction reading t+1 and writing t.

use bytemuck::{Pod, Zeroable};

use super::buffers::Precision;
use super::context::GpuContext;
use super::kernels::{Kernel, STEP_UNIFORM_STRIDE};
use super::params::GpuParams;
use crate::config::RnnConfig;
use crate::conventions::Mode;
use crate::error::{Result, RnnError};

/// Matches `Params` in shaders/matmul.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    a_off: u32,
    a_rs: u32,
    a_cs: u32,
    b_off: u32,
    b_rs: u32,
    b_cs: u32,
    c_off: u32,
    c_rs: u32,
    flags: u32,
}

const ACCUMULATE: u32 = 1;
const BIAS_A: u32 = 2;
const BIAS_B: u32 = 4;

/// Matches `Step` in shaders/common.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct StepParams {
    batch: u32,
    hidden: u32,
    t: u32,
    prev_slot: u32,
    next_slot: u32,
    out_col: u32,
    out_width: u32,
    flags: u32,
    gate_rows: u32,
    seq_len: u32,
    pad: [u32; 2],
}

const STEP_RELU: u32 = 1;
const STEP_ADD_DIRECT: u32 = 2;
const STEP_REVERSE: u32 = 4;

/// Largest H the persistent kernels take (`MAX_PERSISTENT_H` in shaders/persistent.wgsl).
pub const MAX_PERSISTENT_HIDDEN: usize = 1024;

/// Hidden units (TU) and batch rows (TB) of one workgroup of the tiled step kernels.
const STEP_TILE_UNITS: usize = 32;
const STEP_TILE_ROWS: usize = 4;

/// Rows and columns of C per workgroup of shaders/matmul.wgsl (TM, TN).
const MATMUL_TILE_ROWS: usize = 128;
const MATMUL_TILE_COLS: usize = 64;

/// Environment variable: `persistent` or `per-step` overrides the choice of forward kernels.
pub const FORWARD_ENV: &str = "RNN_WGPU_FORWARD";

/// How the forward recurrence is dispatched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardVariant {
    /// One dispatch per time step, (H/32) x (B/4) workgroups each (shaders/step_tiled.wgsl).
    PerStep,
    /// One dispatch per layer and direction: workgroup b loops over all steps of row b.
    Persistent,
}

impl ForwardVariant {
    /// The override from `RNN_WGPU_FORWARD`, else per-step: on an H100 the per-step kernels
    /// won at every standard shape, by 1.5x to 7x (BENCHMARKS.md); the persistent ones only
    /// at H=8, B=1, where a step is all dispatch overhead.
    pub fn choose(hidden: usize) -> Self {
        match std::env::var(FORWARD_ENV).as_deref() {
            Ok("persistent") if hidden <= MAX_PERSISTENT_HIDDEN => ForwardVariant::Persistent,
            _ => ForwardVariant::PerStep,
        }
    }
}

/// Matches `Params` in shaders/mask.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MaskParams {
    len: u32,
    /// Invocations per grid row
    row: u32,
    pad: [u32; 2],
}

/// Matches `Params` in shaders/column_sum.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ColumnSumParams {
    m: u32,
    n: u32,
    accumulate: u32,
    pad: u32,
}

/// A recorded dispatch's bind group and grid.
struct Call {
    kernel: Kernel,
    group: wgpu::BindGroup,
    grid: (u32, u32, u32),
}

/// An operand of a matrix product: buffer, offset, row and column strides (in elements).
struct Operand<'a> {
    buffer: &'a wgpu::Buffer,
    offset: usize,
    row_stride: usize,
    col_stride: usize,
}

fn op(buffer: &wgpu::Buffer, offset: usize, row_stride: usize, col_stride: usize) -> Operand<'_> {
    Operand {
        buffer,
        offset,
        row_stride,
        col_stride,
    }
}

fn groups(n: usize, per: usize) -> u32 {
    n.div_ceil(per) as u32
}

/// The buffers and calls of one layer in one direction.
struct DirectionPlan {
    /// Processing order of time indices.
    order: Vec<usize>,
    h0_slot: usize,
    final_slot: usize,
    /// (T+1, B, H)
    states: wgpu::Buffer,
    /// (T+1, B, H), LSTM only
    cells: Option<wgpu::Buffer>,
    /// (B, H): dL/dh carried from step to step
    dh_rec: wgpu::Buffer,
    /// (B, H): dL/dc carried, LSTM only
    dc: Option<wgpu::Buffer>,
    projection: Call,
    step_forward: Call,
    /// The persistent variant of `step_forward`: one dispatch for all steps.
    forward_persistent: Call,
    step_backward: Call,
    hidden_backward: Call,
    /// dW_ih, dW_hh, db_ih, db_hh
    weight_grads: Vec<Call>,
    /// dX += dG · W_ih
    input_grad: Call,
}

/// Dropout between a layer and the one above it, in training forwards.
pub struct DropoutPlan {
    /// (T, B, D*H): 0 or 1/(1-p); all ones for an inference forward
    pub mask: wgpu::Buffer,
    /// (T, B, D*H): the layer's output times the mask, what the layer above reads
    dropped: wgpu::Buffer,
    /// (T, B, D*H): dL/d(the layer's output) = dL/d(dropped) times the mask
    grad_output: wgpu::Buffer,
    forward: Call,
    backward: Call,
}

/// Everything one (model, T, B) needs on the device.
pub struct Plan {
    pub seq: usize,
    pub batch: usize,
    config: RnnConfig,
    /// How the input, gates and layer outputs are stored: f16 for an f16 model (inference),
    /// else f32. Recurrent states stay f32 (see `Plan::new`).
    pub activations: Precision,
    /// (T, B, I)
    pub input: wgpu::Buffer,
    /// (L*D, B, H)
    pub h0: wgpu::Buffer,
    pub c0: wgpu::Buffer,
    /// Per layer: (T, B, D*H)
    pub outputs: Vec<wgpu::Buffer>,
    /// (T, B, D*H): upstream gradient of the last layer's output
    pub grad_output: wgpu::Buffer,
    /// (L*D, B, H)
    pub grad_h_n: wgpu::Buffer,
    pub grad_c_n: wgpu::Buffer,
    /// Per layer: (T, B, in_l): dL/d(layer input)
    pub grad_inputs: Vec<wgpu::Buffer>,
    /// (L*D, B, H)
    pub grad_h0: wgpu::Buffer,
    pub grad_c0: wgpu::Buffer,
    /// (B) u32: steps of each batch row; T for every row unless a run gives lengths
    pub lengths: wgpu::Buffer,
    /// (L*D, B, H): final states gathered for readback
    pub h_n: wgpu::Buffer,
    pub c_n: wgpu::Buffer,
    directions: Vec<DirectionPlan>,
    /// One per layer but the last when the config drops out (never for f16 inference).
    pub dropout: Vec<DropoutPlan>,
    /// The dropout masks hold ones (written by an inference forward), not a training draw.
    pub masks_are_ones: bool,
    /// Bytes of the buffers a forward writes (input, gates, states, cells, layer outputs).
    pub forward_bytes: u64,
    pub forward_variant: ForwardVariant,
}

/// Dispatches issued by one recording.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DispatchCount {
    pub forward: usize,
    pub backward: usize,
}

impl Plan {
    pub fn new(
        ctx: &GpuContext,
        config: &RnnConfig,
        params: &GpuParams,
        seq: usize,
        batch: usize,
        forward_variant: ForwardVariant,
    ) -> Result<Self> {
        let (h, d, l) = (config.hidden_size, config.directions(), config.num_layers);
        let gh = config.gate_rows();
        let mode = config.mode;
        let rows = seq * batch;
        let max_groups = ctx.limits.max_compute_workgroups_per_dimension as usize;
        if batch > max_groups
            || rows.div_ceil(64) > max_groups
            || groups(gh.max(h), 64) as usize > max_groups
        {
            return Err(RnnError::DeviceLimit {
                limit: "max_compute_workgroups_per_dimension",
                what: format!("T*B = {rows}, B = {batch}, G*H = {gh}"),
                needed: rows.div_ceil(64).max(batch) as u64,
                allowed: max_groups as u64,
            });
        }
        // An f16 model: the per-step kernels only (the persistent ones have no f16 variant).
        // Its input, gate pre-activations and layer outputs, the activations that grow with T,
        // are stored f16. The recurrent states h and c stay f32: they carry every rounding on
        // to the next step, and copies between state buffers move whole 4-byte words, which
        // a (B, H) f16 slab with B*H odd is not.
        let f16 = params.f16;
        let (forward_variant, activations) = if f16 {
            (ForwardVariant::PerStep, Precision::F16)
        } else {
            (forward_variant, Precision::F32)
        };
        let states_len = l * d * batch * h;
        let zeros = ctx.zeros("zeros", gh.max(h) * batch)?;
        let mut plan = Plan {
            seq,
            batch,
            config: config.clone(),
            activations,
            input: ctx.zeros_in("input", rows * config.input_size, activations)?,
            h0: ctx.zeros("h0", states_len)?,
            c0: ctx.zeros("c0", states_len)?,
            outputs: (0..l)
                .map(|_| ctx.zeros_in("layer output", rows * d * h, activations))
                .collect::<Result<_>>()?,
            grad_output: ctx.zeros("grad_output", rows * d * h)?,
            grad_h_n: ctx.zeros("grad_h_n", states_len)?,
            grad_c_n: ctx.zeros("grad_c_n", states_len)?,
            grad_inputs: (0..l)
                .map(|k| ctx.zeros("input gradient", rows * config.layer_input_size(k)))
                .collect::<Result<_>>()?,
            grad_h0: ctx.zeros("grad_h0", states_len)?,
            grad_c0: ctx.zeros("grad_c0", states_len)?,
            lengths: ctx.upload_u32("lengths", &vec![seq as u32; batch])?,
            h_n: ctx.zeros("h_n", states_len)?,
            c_n: ctx.zeros("c_n", states_len)?,
            directions: Vec::new(),
            dropout: Vec::new(),
            masks_are_ones: false,
            forward_bytes: 0,
            forward_variant,
        };
        if config.drops_out() && !f16 {
            for layer in 0..l - 1 {
                let len = rows * d * h;
                let mask = ctx.zeros("dropout mask", len)?;
                let dropped = ctx.zeros("dropped layer output", len)?;
                let grad_output = ctx.zeros("dropout gradient", len)?;
                let forward = mask_call(ctx, &plan.outputs[layer], &mask, &dropped, len)?;
                let backward =
                    mask_call(ctx, &plan.grad_inputs[layer + 1], &mask, &grad_output, len)?;
                plan.forward_bytes += mask.size() + dropped.size();
                plan.dropout.push(DropoutPlan {
                    mask,
                    dropped,
                    grad_output,
                    forward,
                    backward,
                });
            }
        }
        for layer in 0..l {
            let features = config.layer_input_size(layer);
            // With dropout, a layer reads the dropped output of the one below, and its output
            // gradient is the one of the dropped output passed back through the mask.
            let x = match layer {
                0 => &plan.input,
                _ => match plan.dropout.get(layer - 1) {
                    Some(drop) => &drop.dropped,
                    None => &plan.outputs[layer - 1],
                },
            };
            let grad_out = match plan.dropout.get(layer) {
                _ if layer + 1 == l => &plan.grad_output,
                Some(drop) => &drop.grad_output,
                None => &plan.grad_inputs[layer + 1],
            };
            for dir in 0..d {
                let cell = &params.cells[layer * d + dir];
                let reverse = dir == 1;
                let order: Vec<usize> = if reverse {
                    (0..seq).rev().collect()
                } else {
                    (0..seq).collect()
                };
                let gates = ctx.zeros_in("gates", rows * gh, activations)?;
                let states = ctx.zeros("states", (seq + 1) * batch * h)?;
                let cells = (mode == Mode::Lstm)
                    .then(|| ctx.zeros("cells", (seq + 1) * batch * h))
                    .transpose()?;
                let hidden_n = (mode == Mode::Gru)
                    .then(|| ctx.zeros("hidden_n", rows * h))
                    .transpose()?;
                let hgrads = (mode == Mode::Gru)
                    .then(|| ctx.zeros("hidden gate grads", rows * gh))
                    .transpose()?;
                let direct = (mode == Mode::Gru)
                    .then(|| ctx.zeros("direct", batch * h))
                    .transpose()?;
                plan.forward_bytes += [
                    Some(&gates),
                    Some(&states),
                    cells.as_ref(),
                    hidden_n.as_ref(),
                ]
                .into_iter()
                .flatten()
                .map(|b| b.size())
                .sum::<u64>();
                let dh_rec = ctx.zeros("dh_rec", batch * h)?;
                let dc = (mode == Mode::Lstm)
                    .then(|| ctx.zeros("dc", batch * h))
                    .transpose()?;

                let mut step_bytes = vec![0u8; seq * STEP_UNIFORM_STRIDE as usize];
                for t in 0..seq {
                    let (prev_slot, next_slot) = if reverse { (t + 1, t) } else { (t, t + 1) };
                    let mut flags = if mode == Mode::RnnRelu { STEP_RELU } else { 0 };
                    if mode == Mode::Gru {
                        flags |= STEP_ADD_DIRECT;
                    }
                    if reverse {
                        flags |= STEP_REVERSE;
                    }
                    let step = StepParams {
                        batch: batch as u32,
                        hidden: h as u32,
                        t: t as u32,
                        prev_slot: prev_slot as u32,
                        next_slot: next_slot as u32,
                        out_col: (dir * h) as u32,
                        out_width: (d * h) as u32,
                        flags,
                        gate_rows: gh as u32,
                        seq_len: seq as u32,
                        pad: [0; 2],
                    };
                    let at = t * STEP_UNIFORM_STRIDE as usize;
                    step_bytes[at..at + std::mem::size_of::<StepParams>()]
                        .copy_from_slice(bytemuck::bytes_of(&step));
                }
                let steps = ctx.uniform("steps", &step_bytes)?;

                let bias = config.bias;
                // The GRU keeps b_hh apart (inside r * (W_hn h + b_hn)); the others fold it in.
                let fold_hh = bias && mode != Mode::Gru;
                let mut projection = plan.matmul(
                    ctx,
                    (rows, gh, features),
                    op(x, 0, features, 1),
                    op(&cell.w_ih, 0, 1, features),
                    op(&gates, 0, gh, 1),
                    (if bias { BIAS_A } else { 0 }) | (if fold_hh { BIAS_B } else { 0 }),
                    (&cell.b_ih, &cell.b_hh),
                )?;
                if f16 {
                    // Same bindings: input, W_ih and gates stored f16.
                    projection.kernel = Kernel::MatmulF16;
                }
                let output = &plan.outputs[layer];
                // step_tiled.wgsl and hidden_backward.wgsl: TU units x TB rows per workgroup.
                let tiled_grid = (groups(h, STEP_TILE_UNITS), groups(batch, STEP_TILE_ROWS), 1);
                let step_grid = (groups(h, 64), batch as u32, 1);
                let (forward_kernel, persistent_kernel, backward_kernel, cell_buffers): (
                    Kernel,
                    Kernel,
                    Kernel,
                    Vec<&wgpu::Buffer>,
                ) = match mode {
                    Mode::RnnTanh | Mode::RnnRelu => (
                        if f16 {
                            Kernel::RnnForwardF16
                        } else {
                            Kernel::RnnForward
                        },
                        Kernel::RnnForwardPersistent,
                        Kernel::RnnBackwardGates,
                        vec![
                            &steps,
                            &cell.w_hh_t,
                            &gates,
                            &states,
                            output,
                            grad_out,
                            &dh_rec,
                            &plan.lengths,
                        ],
                    ),
                    Mode::Lstm => (
                        if f16 {
                            Kernel::LstmForwardF16
                        } else {
                            Kernel::LstmForward
                        },
                        Kernel::LstmForwardPersistent,
                        Kernel::LstmBackwardGates,
                        vec![
                            &steps,
                            &cell.w_hh_t,
                            &gates,
                            &states,
                            cells.as_ref().expect("LSTM"),
                            output,
                            grad_out,
                            &dh_rec,
                            dc.as_ref().expect("LSTM"),
                            &plan.lengths,
                        ],
                    ),
                    Mode::Gru => (
                        if f16 {
                            Kernel::GruForwardF16
                        } else {
                            Kernel::GruForward
                        },
                        Kernel::GruForwardPersistent,
                        Kernel::GruBackwardGates,
                        vec![
                            &steps,
                            &cell.w_hh_t,
                            &cell.b_hh,
                            &gates,
                            &states,
                            hidden_n.as_ref().expect("GRU"),
                            output,
                            grad_out,
                            &dh_rec,
                            hgrads.as_ref().expect("GRU"),
                            direct.as_ref().expect("GRU"),
                            &plan.lengths,
                        ],
                    ),
                };
                let cell_group = ctx.bind_group(forward_kernel, &cell_buffers)?;
                let hg = hgrads.as_ref().unwrap_or(&gates);
                let hidden_group = ctx.bind_group(
                    Kernel::HiddenBackward,
                    &[
                        &steps,
                        &cell.w_hh,
                        hg,
                        direct.as_ref().unwrap_or(&zeros),
                        &dh_rec,
                        &plan.lengths,
                    ],
                )?;
                let prev_offset = if reverse { batch * h } else { 0 };
                let mut weight_grads = vec![
                    plan.matmul(
                        ctx,
                        (gh, features, rows),
                        op(&gates, 0, 1, gh),
                        op(x, 0, features, 1),
                        op(&cell.grad_w_ih, 0, features, 1),
                        0,
                        (&zeros, &zeros),
                    )?,
                    plan.matmul(
                        ctx,
                        (gh, h, rows),
                        op(hg, 0, 1, gh),
                        op(&states, prev_offset, h, 1),
                        op(&cell.grad_w_hh, 0, h, 1),
                        0,
                        (&zeros, &zeros),
                    )?,
                ];
                if bias {
                    weight_grads.push(column_sum(ctx, &gates, &cell.grad_b_ih, rows, gh)?);
                    weight_grads.push(column_sum(ctx, hg, &cell.grad_b_hh, rows, gh)?);
                }
                let input_grad = plan.matmul(
                    ctx,
                    (rows, features, gh),
                    op(&gates, 0, gh, 1),
                    op(&cell.w_ih, 0, features, 1),
                    op(&plan.grad_inputs[layer], 0, features, 1),
                    ACCUMULATE,
                    (&zeros, &zeros),
                )?;
                plan.directions.push(DirectionPlan {
                    h0_slot: if reverse { seq } else { 0 },
                    final_slot: if reverse { 0 } else { seq },
                    order,
                    projection,
                    step_forward: Call {
                        kernel: forward_kernel,
                        group: cell_group.clone(),
                        grid: tiled_grid,
                    },
                    forward_persistent: Call {
                        kernel: persistent_kernel,
                        group: cell_group.clone(),
                        grid: (1, batch as u32, 1),
                    },
                    step_backward: Call {
                        kernel: backward_kernel,
                        group: cell_group,
                        grid: step_grid,
                    },
                    hidden_backward: Call {
                        kernel: Kernel::HiddenBackward,
                        group: hidden_group,
                        grid: tiled_grid,
                    },
                    weight_grads,
                    input_grad,
                    states,
                    cells,
                    dh_rec,
                    dc,
                });
            }
        }
        plan.forward_bytes +=
            plan.input.size() + plan.outputs.iter().map(|b| b.size()).sum::<u64>();
        // Compile every kernel now so that recording never does.
        for dir in &plan.directions {
            for kernel in [
                dir.step_forward.kernel,
                dir.step_backward.kernel,
                Kernel::HiddenBackward,
                Kernel::Matmul,
                Kernel::ColumnSum,
            ] {
                ctx.kernel(kernel)?;
            }
        }
        Ok(plan)
    }

    /// A matrix product call c (m, n) = a (m, k) · b (k, n) with the given flags and biases.
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &self,
        ctx: &GpuContext,
        (m, n, k): (usize, usize, usize),
        a: Operand<'_>,
        b: Operand<'_>,
        c: Operand<'_>,
        flags: u32,
        (bias_a, bias_b): (&wgpu::Buffer, &wgpu::Buffer),
    ) -> Result<Call> {
        let params = MatmulParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            a_off: a.offset as u32,
            a_rs: a.row_stride as u32,
            a_cs: a.col_stride as u32,
            b_off: b.offset as u32,
            b_rs: b.row_stride as u32,
            b_cs: b.col_stride as u32,
            c_off: c.offset as u32,
            c_rs: c.row_stride as u32,
            flags,
        };
        let uniform = ctx.uniform("matmul params", bytemuck::bytes_of(&params))?;
        let group = ctx.bind_group(
            Kernel::Matmul,
            &[&uniform, a.buffer, b.buffer, c.buffer, bias_a, bias_b],
        )?;
        Ok(Call {
            kernel: Kernel::Matmul,
            group,
            grid: (groups(n, MATMUL_TILE_COLS), groups(m, MATMUL_TILE_ROWS), 1),
        })
    }

    /// Records copying h0 / c0 in and the forward pass of every layer.
    pub fn record_forward(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
    ) -> Result<usize> {
        let slab = (self.batch * self.config.hidden_size * 4) as u64;
        for (k, dir) in self.directions.iter().enumerate() {
            let at = dir.h0_slot as u64 * slab;
            encoder.copy_buffer_to_buffer(&self.h0, k as u64 * slab, &dir.states, at, slab);
            if let Some(cells) = &dir.cells {
                encoder.copy_buffer_to_buffer(&self.c0, k as u64 * slab, cells, at, slab);
            }
        }
        let mut dispatches = 0;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("forward"),
                timestamp_writes: None,
            });
            let d = self.config.directions();
            for (k, dir) in self.directions.iter().enumerate() {
                dispatch(ctx, &mut pass, &dir.projection, None)?;
                dispatches += 1;
                dispatches += match self.forward_variant {
                    ForwardVariant::PerStep => {
                        steps(ctx, &mut pass, &dir.step_forward, dir.order.iter().copied())?
                    }
                    ForwardVariant::Persistent => {
                        dispatch(ctx, &mut pass, &dir.forward_persistent, Some(0))?;
                        1
                    }
                };
                let last_of_layer = k % d == d - 1;
                if let (true, Some(drop)) = (last_of_layer, self.dropout.get(k / d)) {
                    dispatch(ctx, &mut pass, &drop.forward, None)?;
                    dispatches += 1;
                }
            }
        }
        for (k, dir) in self.directions.iter().enumerate() {
            let at = dir.final_slot as u64 * slab;
            encoder.copy_buffer_to_buffer(&dir.states, at, &self.h_n, k as u64 * slab, slab);
            if let Some(cells) = &dir.cells {
                encoder.copy_buffer_to_buffer(cells, at, &self.c_n, k as u64 * slab, slab);
            }
        }
        Ok(dispatches)
    }

    /// Records BPTT through the last recorded forward: every parameter gradient, dL/dh0, dL/dc0
    /// and, when asked, dL/d input.
    pub fn record_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        need_input_grad: bool,
    ) -> Result<usize> {
        let slab = (self.batch * self.config.hidden_size * 4) as u64;
        for (k, dir) in self.directions.iter().enumerate() {
            encoder.copy_buffer_to_buffer(&self.grad_h_n, k as u64 * slab, &dir.dh_rec, 0, slab);
            if let Some(dc) = &dir.dc {
                encoder.copy_buffer_to_buffer(&self.grad_c_n, k as u64 * slab, dc, 0, slab);
            }
        }
        for grad in &self.grad_inputs {
            encoder.clear_buffer(grad, 0, None);
        }
        let d = self.config.directions();
        let mut dispatches = 0;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("backward"),
                timestamp_writes: None,
            });
            for (k, dir) in self.directions.iter().enumerate().rev() {
                let layer = k / d;
                let first_of_layer = k % d == d - 1;
                if let (true, Some(drop)) = (first_of_layer, self.dropout.get(layer)) {
                    dispatch(ctx, &mut pass, &drop.backward, None)?;
                    dispatches += 1;
                }
                for &t in dir.order.iter().rev() {
                    dispatches += steps(ctx, &mut pass, &dir.step_backward, [t])?;
                    dispatches += steps(ctx, &mut pass, &dir.hidden_backward, [t])?;
                }
                for call in &dir.weight_grads {
                    dispatch(ctx, &mut pass, call, None)?;
                    dispatches += 1;
                }
                if layer > 0 || need_input_grad {
                    dispatch(ctx, &mut pass, &dir.input_grad, None)?;
                    dispatches += 1;
                }
            }
        }
        for (k, dir) in self.directions.iter().enumerate() {
            encoder.copy_buffer_to_buffer(&dir.dh_rec, 0, &self.grad_h0, k as u64 * slab, slab);
            if let Some(dc) = &dir.dc {
                encoder.copy_buffer_to_buffer(dc, 0, &self.grad_c0, k as u64 * slab, slab);
            }
        }
        Ok(dispatches)
    }
}

fn column_sum(
    ctx: &GpuContext,
    a: &wgpu::Buffer,
    out: &wgpu::Buffer,
    m: usize,
    n: usize,
) -> Result<Call> {
    let params = ColumnSumParams {
        m: m as u32,
        n: n as u32,
        accumulate: 0,
        pad: 0,
    };
    let uniform = ctx.uniform("column sum params", bytemuck::bytes_of(&params))?;
    let group = ctx.bind_group(Kernel::ColumnSum, &[&uniform, a, out])?;
    Ok(Call {
        kernel: Kernel::ColumnSum,
        group,
        grid: (groups(n, 64), 1, 1),
    })
}

/// out = a * mask over `len` values (shaders/mask.wgsl).
fn mask_call(
    ctx: &GpuContext,
    a: &wgpu::Buffer,
    mask: &wgpu::Buffer,
    out: &wgpu::Buffer,
    len: usize,
) -> Result<Call> {
    let max_groups = ctx.limits.max_compute_workgroups_per_dimension as usize;
    let x = groups(len, 256).clamp(1, max_groups as u32);
    let row = x as usize * 256;
    let params = MaskParams {
        len: len as u32,
        row: row as u32,
        pad: [0; 2],
    };
    let uniform = ctx.uniform("mask params", bytemuck::bytes_of(&params))?;
    let group = ctx.bind_group(Kernel::Mask, &[&uniform, a, mask, out])?;
    Ok(Call {
        kernel: Kernel::Mask,
        group,
        grid: (x, groups(len, row), 1),
    })
}

fn dispatch(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    call: &Call,
    offset: Option<u32>,
) -> Result<()> {
    let compiled = ctx.kernel(call.kernel)?;
    pass.set_pipeline(&compiled.pipeline);
    pass.set_bind_group(0, &call.group, offset.as_slice());
    let (x, y, z) = call.grid;
    pass.dispatch_workgroups(x, y, z);
    Ok(())
}

/// One dispatch of a per-step kernel for each time index; returns how many.
fn steps(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    call: &Call,
    times: impl IntoIterator<Item = usize>,
) -> Result<usize> {
    let compiled = ctx.kernel(call.kernel)?;
    pass.set_pipeline(&compiled.pipeline);
    let (x, y, z) = call.grid;
    let mut count = 0;
    for t in times {
        pass.set_bind_group(0, &call.group, &[(t as u64 * STEP_UNIFORM_STRIDE) as u32]);
        pass.dispatch_workgroups(x, y, z);
        count += 1;
    }
    Ok(count)
}
