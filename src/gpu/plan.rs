//! The plan of one model at one (T, B): every activation buffer, uniform and call made once,
//! the kernels of every cell chosen up front, so that a forward, or a forward + BPTT, is then
//! recorded (`gpu/record.rs`) into one command encoder with no allocation.
//!
//! States are time-indexed as on the CPU path: (T+1, B, H) slots, the forward direction reading
//! slot t and writing t+1, the reverse direction reading t+1 and writing t.

use super::buffers::Precision;
use super::context::GpuContext;
use super::kernels::{
    self, Kernel, MATMUL_ACCUMULATE, MATMUL_BIAS_A, MATMUL_BIAS_B, STEP_TILE_ROWS, STEP_TILE_UNITS,
};
use super::ops::{self, Call, CellKernels, Matmul, StepShape, groups, operand};
use super::params::{GpuCell, GpuParams};
use crate::config::RnnConfig;
use crate::conventions::Mode;
use crate::error::{Result, RnnError};

/// Largest H the persistent kernels take (`MAX_PERSISTENT_H` in shaders/persistent.wgsl).
pub const MAX_PERSISTENT_HIDDEN: usize = kernels::MAX_PERSISTENT_HIDDEN as usize;

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

/// The buffers and calls of one layer in one direction.
pub(super) struct DirectionPlan {
    /// Processing order of time indices.
    pub order: Vec<usize>,
    pub h0_slot: usize,
    pub final_slot: usize,
    /// (T+1, B, H)
    pub states: wgpu::Buffer,
    /// (T+1, B, H), LSTM only
    pub cells: Option<wgpu::Buffer>,
    /// (B, H): dL/dh carried from step to step
    pub dh_rec: wgpu::Buffer,
    /// (B, H): dL/dc carried, LSTM only
    pub dc: Option<wgpu::Buffer>,
    /// gates = x W_ih^T (+ biases)
    pub projection: Call,
    /// The recurrence: per step (dispatched once per time index) or persistent (once).
    pub forward: Call,
    pub step_backward: Call,
    pub hidden_backward: Call,
    /// dW_ih, dW_hh, db_ih, db_hh
    pub weight_grads: Vec<Call>,
    /// dX += dG · W_ih
    pub input_grad: Call,
}

/// Dropout between a layer and the one above it, in training forwards.
pub struct DropoutPlan {
    /// (T, B, D*H): 0 or 1/(1-p); all ones for an inference forward
    pub mask: wgpu::Buffer,
    /// (T, B, D*H): the layer's output times the mask, what the layer above reads
    dropped: wgpu::Buffer,
    /// (T, B, D*H): dL/d(the layer's output) = dL/d(dropped) times the mask
    grad_output: wgpu::Buffer,
    pub forward: Call,
    pub backward: Call,
}

/// Everything one (model, T, B) needs on the device.
pub struct Plan {
    pub seq: usize,
    pub batch: usize,
    pub(super) config: RnnConfig,
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
    pub(super) directions: Vec<DirectionPlan>,
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
        check_grid(ctx, config, seq, batch)?;
        // An f16 model: the per-step kernels only (the persistent ones have no f16 variant).
        // Its input, gate pre-activations and layer outputs, the activations that grow with T,
        // are stored f16. The recurrent states h and c stay f32: they carry every rounding on
        // to the next step, and copies between state buffers move whole 4-byte words, which
        // a (B, H) f16 slab with B*H odd is not.
        let (forward_variant, activations) = if params.f16 {
            (ForwardVariant::PerStep, Precision::F16)
        } else {
            (forward_variant, Precision::F32)
        };
        let mut plan = Plan::buffers(ctx, config, seq, batch, activations, forward_variant)?;
        if config.drops_out() && !params.f16 {
            plan.add_dropout(ctx)?;
        }
        let (h, gh) = (config.hidden_size, config.gate_rows());
        let zeros = ctx.zeros("zeros", gh.max(h) * batch)?;
        let kernels = CellKernels::for_cell(config.mode, params.f16);
        for layer in 0..config.num_layers {
            for direction in 0..config.directions() {
                let cell = &params.cells[layer * config.directions() + direction];
                let at = Place {
                    layer,
                    direction,
                    kernels,
                    zeros: &zeros,
                    f16: params.f16,
                };
                let built = DirectionPlan::build(ctx, &plan, cell, &at)?;
                plan.forward_bytes += built.forward_bytes;
                plan.directions.push(built.plan);
            }
        }
        plan.forward_bytes +=
            plan.input.size() + plan.outputs.iter().map(|b| b.size()).sum::<u64>();
        Ok(plan)
    }

    /// The plan's own buffers (inputs, layer outputs, states and their gradients); no
    /// directions or dropout yet.
    fn buffers(
        ctx: &GpuContext,
        config: &RnnConfig,
        seq: usize,
        batch: usize,
        activations: Precision,
        forward_variant: ForwardVariant,
    ) -> Result<Self> {
        let (h, d, l) = (config.hidden_size, config.directions(), config.num_layers);
        let rows = seq * batch;
        let states_len = l * d * batch * h;
        Ok(Plan {
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
        })
    }

    /// Dropout between every layer and the one above it.
    fn add_dropout(&mut self, ctx: &GpuContext) -> Result<()> {
        let len = self.seq * self.batch * self.config.output_size();
        for layer in 0..self.config.num_layers - 1 {
            let mask = ctx.zeros("dropout mask", len)?;
            let dropped = ctx.zeros("dropped layer output", len)?;
            let grad_output = ctx.zeros("dropout gradient", len)?;
            let forward = ops::mask(ctx, &self.outputs[layer], &mask, &dropped, len)?;
            let gradient_above = &self.grad_inputs[layer + 1];
            let backward = ops::mask(ctx, gradient_above, &mask, &grad_output, len)?;
            self.forward_bytes += mask.size() + dropped.size();
            self.dropout.push(DropoutPlan {
                mask,
                dropped,
                grad_output,
                forward,
                backward,
            });
        }
        Ok(())
    }

    /// What `layer` reads: the input, or the (dropped) output of the layer below.
    fn layer_input(&self, layer: usize) -> &wgpu::Buffer {
        match layer {
            0 => &self.input,
            _ => match self.dropout.get(layer - 1) {
                Some(drop) => &drop.dropped,
                None => &self.outputs[layer - 1],
            },
        }
    }

    /// Where `layer`'s output gradient arrives: the upstream gradient for the last layer, else
    /// the input gradient of the layer above (passed back through its dropout mask).
    fn layer_grad_output(&self, layer: usize) -> &wgpu::Buffer {
        match self.dropout.get(layer) {
            _ if layer + 1 == self.config.num_layers => &self.grad_output,
            Some(drop) => &drop.grad_output,
            None => &self.grad_inputs[layer + 1],
        }
    }
}

/// Workgroup counts the plan's dispatches need, against the device's limit per dimension.
fn check_grid(ctx: &GpuContext, config: &RnnConfig, seq: usize, batch: usize) -> Result<()> {
    let (h, gh) = (config.hidden_size, config.gate_rows());
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
    Ok(())
}

/// Which direction of which layer a `DirectionPlan` is for, and what every one shares.
struct Place<'a> {
    layer: usize,
    direction: usize,
    kernels: CellKernels,
    /// Zeros, at least (B, max(G*H, H)): the operand of absent biases and GRU-only inputs
    zeros: &'a wgpu::Buffer,
    f16: bool,
}

/// A direction's plan and the bytes its forward writes.
struct BuiltDirection {
    plan: DirectionPlan,
    forward_bytes: u64,
}

/// One direction's own buffers.
struct DirectionBuffers {
    /// (T, B, G*H): gate pre-activations, then their gradients
    gates: wgpu::Buffer,
    /// (T+1, B, H)
    states: wgpu::Buffer,
    /// (T+1, B, H), LSTM only
    cells: Option<wgpu::Buffer>,
    /// (T, B, H), GRU only: W_hn h + b_hn
    hidden_n: Option<wgpu::Buffer>,
    /// (T, B, G*H), GRU only: gradients of the hidden projections
    hgrads: Option<wgpu::Buffer>,
    /// (B, H), GRU only: z * dh
    direct: Option<wgpu::Buffer>,
    /// (B, H)
    dh_rec: wgpu::Buffer,
    /// (B, H), LSTM only
    dc: Option<wgpu::Buffer>,
}

impl DirectionBuffers {
    fn new(ctx: &GpuContext, plan: &Plan) -> Result<Self> {
        let cfg = &plan.config;
        let (mode, h, gh) = (cfg.mode, cfg.hidden_size, cfg.gate_rows());
        let (rows, slots) = (plan.seq * plan.batch, (plan.seq + 1) * plan.batch);
        let only = |wanted: Mode, what: &str, len: usize| {
            (mode == wanted).then(|| ctx.zeros(what, len)).transpose()
        };
        Ok(DirectionBuffers {
            gates: ctx.zeros_in("gates", rows * gh, plan.activations)?,
            states: ctx.zeros("states", slots * h)?,
            cells: only(Mode::Lstm, "cells", slots * h)?,
            hidden_n: only(Mode::Gru, "hidden_n", rows * h)?,
            hgrads: only(Mode::Gru, "hidden gate grads", rows * gh)?,
            direct: only(Mode::Gru, "direct", plan.batch * h)?,
            dh_rec: ctx.zeros("dh_rec", plan.batch * h)?,
            dc: only(Mode::Lstm, "dc", plan.batch * h)?,
        })
    }

    /// Bytes a forward writes into them.
    fn forward_bytes(&self) -> u64 {
        [
            Some(&self.gates),
            Some(&self.states),
            self.cells.as_ref(),
            self.hidden_n.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|b| b.size())
        .sum()
    }

    /// The gate gradients BPTT's hidden-side products read: GRU's own, else the gates'.
    fn hidden_grads(&self) -> &wgpu::Buffer {
        self.hgrads.as_ref().unwrap_or(&self.gates)
    }

    /// The cell kernels' bindings by name: one list for all the cell file's entry points.
    fn named<'a>(
        &'a self,
        plan: &'a Plan,
        cell: &'a GpuCell,
        steps: &'a wgpu::Buffer,
        layer: usize,
    ) -> Vec<(&'static str, &'a wgpu::Buffer)> {
        let mut named = vec![
            ("s", steps),
            ("w_hh_t", &cell.w_hh_t),
            ("gates", &self.gates),
            ("states", &self.states),
            ("output", &plan.outputs[layer]),
            ("grad_out", plan.layer_grad_output(layer)),
            ("dh_rec", &self.dh_rec),
            ("lengths", &plan.lengths),
        ];
        if plan.config.mode == Mode::Gru {
            named.push(("b_hh", &cell.b_hh));
        }
        let optional = [
            ("cells", &self.cells),
            ("dc", &self.dc),
            ("hidden_n", &self.hidden_n),
            ("hgrads", &self.hgrads),
            ("direct", &self.direct),
        ];
        named.extend(
            optional
                .into_iter()
                .filter_map(|(name, buffer)| Some((name, buffer.as_ref()?))),
        );
        named
    }
}

impl DirectionPlan {
    fn build(
        ctx: &GpuContext,
        plan: &Plan,
        cell: &GpuCell,
        at: &Place<'_>,
    ) -> Result<BuiltDirection> {
        let cfg = &plan.config;
        let (seq, batch, h) = (plan.seq, plan.batch, cfg.hidden_size);
        let buffers = DirectionBuffers::new(ctx, plan)?;
        let steps = ops::step_uniforms(
            ctx,
            StepShape {
                mode: cfg.mode,
                seq,
                batch,
                hidden: h,
                gate_rows: cfg.gate_rows(),
                direction: at.direction,
                directions: cfg.directions(),
            },
        )?;
        let named = buffers.named(plan, cell, &steps, at.layer);
        // step_tiled.wgsl and hidden_backward.wgsl: TU units x TB rows per workgroup.
        let tiled_grid = (groups(h, STEP_TILE_UNITS), groups(batch, STEP_TILE_ROWS), 1);
        let forward = match plan.forward_variant {
            ForwardVariant::PerStep => Call::new(ctx, at.kernels.step_forward, &named, tiled_grid),
            ForwardVariant::Persistent => {
                let grid = (1, batch as u32, 1);
                Call::new(ctx, at.kernels.persistent_forward, &named, grid)
            }
        }?;
        let step_grid = (groups(h, 64), batch as u32, 1);
        let step_backward = Call::new(ctx, at.kernels.backward_gates, &named, step_grid)?;
        let hidden = [
            ("s", &steps),
            ("w_hh", &cell.w_hh),
            ("hg", buffers.hidden_grads()),
            ("direct", buffers.direct.as_ref().unwrap_or(at.zeros)),
            ("dh_rec", &buffers.dh_rec),
            ("lengths", &plan.lengths),
        ];
        let hidden_backward = Call::new(ctx, Kernel::HiddenBackward, &hidden, tiled_grid)?;
        let products = Products::new(ctx, plan, cell, &buffers, at)?;
        let forward_bytes = buffers.forward_bytes();
        let reverse = at.direction == 1;
        let plan = DirectionPlan {
            order: if reverse {
                (0..seq).rev().collect()
            } else {
                (0..seq).collect()
            },
            h0_slot: if reverse { seq } else { 0 },
            final_slot: if reverse { 0 } else { seq },
            states: buffers.states,
            cells: buffers.cells,
            dh_rec: buffers.dh_rec,
            dc: buffers.dc,
            projection: products.projection,
            forward,
            step_backward,
            hidden_backward,
            weight_grads: products.weight_grads,
            input_grad: products.input_grad,
        };
        Ok(BuiltDirection {
            plan,
            forward_bytes,
        })
    }
}

/// The matrix products of one direction: the input projection forward; the weight, bias and
/// input gradients backward.
struct Products {
    projection: Call,
    /// dW_ih, dW_hh, db_ih, db_hh
    weight_grads: Vec<Call>,
    input_grad: Call,
}

impl Products {
    fn new(
        ctx: &GpuContext,
        plan: &Plan,
        cell: &GpuCell,
        b: &DirectionBuffers,
        at: &Place<'_>,
    ) -> Result<Self> {
        let cfg = &plan.config;
        let (h, gh) = (cfg.hidden_size, cfg.gate_rows());
        let features = cfg.layer_input_size(at.layer);
        let rows = plan.seq * plan.batch;
        let x = plan.layer_input(at.layer);
        let zeros = at.zeros;
        let product = |dims, a, b_operand, c, flags| Matmul {
            dims,
            a,
            b: b_operand,
            c,
            flags,
            bias_a: zeros,
            bias_b: zeros,
            f16: false,
        };
        // The GRU keeps b_hh apart (inside r * (W_hn h + b_hn)); the others fold it in.
        let fold_hh = cfg.bias && cfg.mode != Mode::Gru;
        let bias_flags =
            (if cfg.bias { MATMUL_BIAS_A } else { 0 }) | (if fold_hh { MATMUL_BIAS_B } else { 0 });
        let projection = Matmul {
            bias_a: &cell.b_ih,
            bias_b: &cell.b_hh,
            f16: at.f16,
            ..product(
                (rows, gh, features),
                operand(x, 0, features, 1),
                operand(&cell.w_ih, 0, 1, features),
                operand(&b.gates, 0, gh, 1),
                bias_flags,
            )
        };
        let hg = b.hidden_grads();
        let prev_offset = if at.direction == 1 { plan.batch * h } else { 0 };
        let mut weight_grads = vec![
            ops::matmul(
                ctx,
                product(
                    (gh, features, rows),
                    operand(&b.gates, 0, 1, gh),
                    operand(x, 0, features, 1),
                    operand(&cell.grad_w_ih, 0, features, 1),
                    0,
                ),
            )?,
            ops::matmul(
                ctx,
                product(
                    (gh, h, rows),
                    operand(hg, 0, 1, gh),
                    operand(&b.states, prev_offset, h, 1),
                    operand(&cell.grad_w_hh, 0, h, 1),
                    0,
                ),
            )?,
        ];
        if cfg.bias {
            weight_grads.push(ops::column_sum(ctx, &b.gates, &cell.grad_b_ih, rows, gh)?);
            weight_grads.push(ops::column_sum(ctx, hg, &cell.grad_b_hh, rows, gh)?);
        }
        let input_grad = product(
            (rows, features, gh),
            operand(&b.gates, 0, gh, 1),
            operand(&cell.w_ih, 0, features, 1),
            operand(&plan.grad_inputs[at.layer], 0, features, 1),
            MATMUL_ACCUMULATE,
        );
        Ok(Products {
            projection: ops::matmul(ctx, projection)?,
            weight_grads,
            input_grad: ops::matmul(ctx, input_grad)?,
        })
    }
}
