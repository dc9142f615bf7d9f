//! A recurrent stack on the GPU: parameters resident, one plan per (T, B), ndarray in and out.

use std::sync::{Arc, Mutex};

use ndarray::{Array3, ArrayView3};

use super::buffers::{Precision, Readback};
use super::context::GpuContext;
use super::optimizer::DeviceAdam;
use super::params::GpuParams;
use super::plan::{DispatchCount, ForwardVariant, Plan};
use super::plan_cache::{PlanCache, PlanLease};
use crate::config::RnnConfig;
use crate::cpu::stack::{StackGrads, StackOutput};
use crate::error::{Result, RnnError};
use crate::params::RnnParams;

/// The stack's parameters and plans on one device.
pub struct GpuModel {
    pub(super) ctx: Arc<GpuContext>,
    config: RnnConfig,
    pub(super) params: GpuParams,
    /// Adam moments for steps on the device, made on the first one.
    pub(super) adam: Mutex<Option<DeviceAdam>>,
    /// Plans per (T, B), leased to the tapes and streams that need theirs kept.
    plans: Mutex<PlanCache>,
    /// Forces the forward kernels instead of the per-shape choice.
    forward_override: Mutex<Option<ForwardVariant>>,
    /// Submissions and dispatches so far, for tests and reports.
    stats: Mutex<GpuStats>,
}

impl std::fmt::Debug for GpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuModel")
            .field("device", &self.ctx.info.name)
            .field("stats", &self.stats())
            .finish()
    }
}

/// What the model has issued to the queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuStats {
    pub submissions: usize,
    pub last: DispatchCount,
    /// The forward kernels of the last run.
    pub forward_variant: Option<ForwardVariant>,
}

/// What a backward continues from: the plan whose activation buffers the forward wrote,
/// held until this tape is consumed or dropped, so that other forwards (of this shape or any
/// other) leave them alone.
#[derive(Debug)]
pub struct GpuTape {
    pub seq: usize,
    pub batch: usize,
    lease: PlanLease,
}

/// What a forward reads, seq-first and already checked.
#[derive(Clone, Copy, Debug)]
pub struct RunInputs<'a, T = f32> {
    /// (T, B, I)
    pub input: ArrayView3<'a, T>,
    /// (L*D, B, H)
    pub h0: ArrayView3<'a, T>,
    /// (L*D, B, H), LSTM only
    pub c0: Option<ArrayView3<'a, T>>,
    /// (B), each in 1..=T, for a variable-length batch
    pub lengths: Option<&'a [usize]>,
    /// Empty, or one (T, B, D*H) mask per layer but the last (`crate::dropout`)
    pub dropout: &'a [Array3<T>],
}

impl<'a, T> RunInputs<'a, T> {
    /// A full-length batch with no dropout.
    pub fn new(
        input: ArrayView3<'a, T>,
        h0: ArrayView3<'a, T>,
        c0: Option<ArrayView3<'a, T>>,
    ) -> Self {
        RunInputs {
            input,
            h0,
            c0,
            lengths: None,
            dropout: &[],
        }
    }
}

/// Upstream gradients, seq-first; `None` is zeros.
pub struct Upstream<'a, T = f32> {
    /// (T, B, D*H)
    pub output: Option<ArrayView3<'a, T>>,
    /// (L*D, B, H)
    pub h_n: Option<ArrayView3<'a, T>>,
    /// (L*D, B, H)
    pub c_n: Option<ArrayView3<'a, T>>,
}

fn flat(x: ArrayView3<'_, f32>) -> Vec<f32> {
    x.iter().copied().collect()
}

impl GpuModel {
    /// Uploads `params`; with `f16`, for inference in f16 (the adapter must have
    /// SHADER_F16: see `GpuContext::has_f16`).
    pub fn new(
        ctx: Arc<GpuContext>,
        config: &RnnConfig,
        params: &RnnParams<f32>,
        f16: bool,
    ) -> Result<Self> {
        if f16 && !ctx.has_f16() {
            return Err(RnnError::Unsupported(format!(
                "f16 on {} (the adapter has no SHADER_F16)",
                ctx.info.name
            )));
        }
        let gpu_params = GpuParams::upload(&ctx, config, params, f16)?;
        Ok(GpuModel {
            ctx,
            config: config.clone(),
            params: gpu_params,
            adam: Mutex::new(None),
            plans: Mutex::new(PlanCache::new()),
            forward_override: Mutex::new(None),
            stats: Mutex::default(),
        })
    }

    /// Bytes the device holds for the parameters (and, for training, their gradients).
    pub fn param_bytes(&self) -> u64 {
        self.params.bytes()
    }

    /// Bytes of the activation buffers a forward of (T = `seq`, B = `batch`) writes.
    pub fn forward_bytes(&self, seq: usize, batch: usize) -> Result<u64> {
        Ok(self
            .with_plan(seq, batch, false, |plan| Ok(plan.forward_bytes))?
            .0)
    }

    /// Whether the weights and activations are held in f16.
    pub fn is_f16(&self) -> bool {
        self.params.f16
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Re-uploads parameters changed on the host.
    pub fn update_params(&self, params: &RnnParams<f32>) {
        self.params.update(&self.ctx, params);
    }

    /// Uses `variant` for every later forward (plans are rebuilt); `None` restores the choice
    /// by shape (`ForwardVariant::choose`).
    pub fn set_forward_variant(&self, variant: Option<ForwardVariant>) {
        *self
            .forward_override
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = variant;
        self.plans().clear_free();
    }

    /// At most `bound` plans (activation buffers of one (T, B) each) are kept for reuse when no
    /// tape or stream holds them (default `DEFAULT_PLAN_BOUND`); the least recently used go.
    pub fn set_plan_bound(&self, bound: usize) {
        self.plans().set_bound(bound);
    }

    /// (plans on the device, plans held by a live tape or stream).
    pub fn plan_counts(&self) -> (usize, usize) {
        self.plans().counts()
    }

    fn plans(&self) -> std::sync::MutexGuard<'_, PlanCache> {
        self.plans.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config(&self) -> &RnnConfig {
        &self.config
    }

    pub(super) fn count_submission(&self) {
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .submissions += 1;
    }

    pub fn stats(&self) -> GpuStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on a free plan of (T = `seq`, B = `batch`); with `lease`, the plan stays held
    /// for the returned lease.
    pub(super) fn with_plan<R>(
        &self,
        seq: usize,
        batch: usize,
        lease: bool,
        f: impl FnOnce(&mut Plan) -> Result<R>,
    ) -> Result<(R, Option<PlanLease>)> {
        let variant = self
            .forward_override
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(|| ForwardVariant::choose(self.config.hidden_size));
        let build = || Plan::new(&self.ctx, &self.config, &self.params, seq, batch, variant);
        self.plans().with_free((seq, batch), lease, build, f)
    }

    /// Runs `f` on the plan `lease` holds.
    pub(super) fn with_leased<R>(
        &self,
        lease: &PlanLease,
        f: impl FnOnce(&mut Plan) -> Result<R>,
    ) -> Result<R> {
        self.plans().with_leased(lease, f)
    }

    /// Forward pass; with `upstream`, BPTT too, in the same single submission.
    pub fn run(
        &self,
        inputs: RunInputs<'_>,
        upstream: Option<(Upstream<'_>, bool)>,
        read_back: bool,
    ) -> Result<crate::cpu::GpuRun<f32>> {
        let RunInputs {
            input,
            h0,
            c0,
            lengths,
            dropout,
        } = inputs;
        let (seq, batch, _) = input.dim();
        let ctx = &self.ctx;
        if self.params.f16 && upstream.is_some() {
            return Err(RnnError::Unsupported(
                "training an f16 model (f16 is for inference)".into(),
            ));
        }
        let steps: Vec<u32> = match lengths {
            Some(lengths) => lengths.iter().map(|&len| len as u32).collect(),
            None => vec![seq as u32; batch],
        };
        // A forward without BPTT keeps its plan for the tape it returns.
        let keep_tape = upstream.is_none();
        let ((out, grads), lease) = self.with_plan(seq, batch, keep_tape, |plan| {
            ctx.write_in(&plan.input, &flat(input), plan.activations);
            ctx.write_u32(&plan.lengths, &steps);
            ctx.write(&plan.h0, &flat(h0));
            if let Some(c0) = c0 {
                ctx.write(&plan.c0, &flat(c0));
            }
            self.write_masks(plan, dropout)?;
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("rnn step"),
                });
            let forward = ctx.checked("recording the forward pass", || {
                plan.record_forward(ctx, &mut encoder)
            })??;
            let mut backward = 0;
            let need_input_grad = upstream.as_ref().is_some_and(|(_, need)| *need);
            if let Some((grads, _)) = &upstream {
                self.write_upstream(plan, grads);
                backward = ctx.checked("recording the backward pass", || {
                    plan.record_backward(ctx, &mut encoder, need_input_grad)
                })??;
            }
            let reads = if read_back {
                self.readback_list(plan, upstream.is_some(), need_input_grad)
            } else {
                Vec::new()
            };
            let staging = ctx.stage_copies(&mut encoder, &reads)?;
            ctx.checked("submitting", || ctx.queue.submit([encoder.finish()]))?;
            {
                let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
                stats.submissions += 1;
                stats.last = DispatchCount { forward, backward };
                stats.forward_variant = Some(plan.forward_variant);
            }
            if !read_back {
                ctx.wait()?;
                return Ok((None, None));
            }
            let mut values = ctx.read_staging(&staging, &reads)?.into_iter();
            let (out, grads) =
                self.unpack(&mut values, seq, batch, upstream.is_some(), need_input_grad);
            Ok((Some(out), grads))
        })?;
        let tape = lease.map(|lease| GpuTape { seq, batch, lease });
        Ok((out, grads, tape))
    }

    /// BPTT through the forward that made `tape`, in one submission.
    pub fn backward(
        &self,
        tape: GpuTape,
        upstream: Upstream<'_>,
        need_input_grad: bool,
    ) -> Result<StackGrads<f32>> {
        let grads = self.record_backward(tape, upstream, Some(need_input_grad))?;
        Ok(grads.expect("read back when asked"))
    }

    /// BPTT through the forward that made `tape`, every gradient left on the device (for
    /// `adam_step`); nothing is read back.
    pub fn backward_in_place(&self, tape: GpuTape, upstream: Upstream<'_>) -> Result<()> {
        self.record_backward(tape, upstream, None).map(drop)
    }

    /// One submission of BPTT; `read_back`: whether to read every gradient back, with the
    /// input gradient or not.
    fn record_backward(
        &self,
        tape: GpuTape,
        upstream: Upstream<'_>,
        read_back: Option<bool>,
    ) -> Result<Option<StackGrads<f32>>> {
        if self.params.f16 {
            return Err(RnnError::Unsupported(
                "training an f16 model (f16 is for inference)".into(),
            ));
        }
        let ctx = &self.ctx;
        let need_input_grad = read_back.unwrap_or(false);
        // The tape is consumed: its plan is free for reuse once this returns.
        self.with_leased(&tape.lease, |plan| {
            self.write_upstream(plan, &upstream);
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("rnn backward"),
                });
            let backward = ctx.checked("recording the backward pass", || {
                plan.record_backward(ctx, &mut encoder, need_input_grad)
            })??;
            let reads = match read_back {
                Some(_) => self.grad_list(plan, need_input_grad),
                None => Vec::new(),
            };
            let staging = ctx.stage_copies(&mut encoder, &reads)?;
            ctx.checked("submitting", || ctx.queue.submit([encoder.finish()]))?;
            {
                let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
                stats.submissions += 1;
                stats.last = DispatchCount {
                    forward: 0,
                    backward,
                };
            }
            if read_back.is_none() {
                return Ok(None);
            }
            let mut values = ctx.read_staging(&staging, &reads)?.into_iter();
            Ok(Some(self.unpack_grads(
                &mut values,
                tape.seq,
                tape.batch,
                need_input_grad,
            )))
        })
    }

    /// The training draw's masks, or ones for a forward without dropout (written once).
    /// masks: empty or one (T, B, D*H) per layer but the last
    fn write_masks(&self, plan: &mut Plan, masks: &[Array3<f32>]) -> Result<()> {
        if masks.is_empty() {
            if !plan.dropout.is_empty() && !plan.masks_are_ones {
                let ones = vec![1.0f32; plan.seq * plan.batch * self.config.output_size()];
                for drop in &plan.dropout {
                    self.ctx.write(&drop.mask, &ones);
                }
                plan.masks_are_ones = true;
            }
            return Ok(());
        }
        if masks.len() != plan.dropout.len() {
            return Err(RnnError::Config(format!(
                "{} dropout masks for a plan with {} (the config's dropout is {})",
                masks.len(),
                plan.dropout.len(),
                self.config.dropout
            )));
        }
        for (drop, mask) in plan.dropout.iter().zip(masks) {
            self.ctx.write(&drop.mask, &flat(mask.view()));
        }
        plan.masks_are_ones = false;
        Ok(())
    }

    fn write_upstream(&self, plan: &Plan, upstream: &Upstream<'_>) {
        let ctx = &self.ctx;
        let zeros = |len: usize| vec![0.0f32; len];
        let cfg = &self.config;
        let out_len = plan.seq * plan.batch * cfg.output_size();
        let state_len = cfg.num_layers * cfg.directions() * plan.batch * cfg.hidden_size;
        ctx.write(
            &plan.grad_output,
            &upstream.output.map(flat).unwrap_or_else(|| zeros(out_len)),
        );
        ctx.write(
            &plan.grad_h_n,
            &upstream.h_n.map(flat).unwrap_or_else(|| zeros(state_len)),
        );
        if cfg.mode.has_cell_state() {
            ctx.write(
                &plan.grad_c_n,
                &upstream.c_n.map(flat).unwrap_or_else(|| zeros(state_len)),
            );
        }
    }

    /// Buffers to read after a run, in the order `unpack` takes them.
    fn readback_list<'p>(
        &'p self,
        plan: &'p Plan,
        backward: bool,
        need_input_grad: bool,
    ) -> Vec<Readback<'p>> {
        let cfg = &self.config;
        let state_len = cfg.num_layers * cfg.directions() * plan.batch * cfg.hidden_size;
        let mut list = vec![
            (
                plan.outputs.last().expect("at least one layer"),
                plan.seq * plan.batch * cfg.output_size(),
                plan.activations,
            ),
            (&plan.h_n, state_len, Precision::F32),
        ];
        if cfg.mode.has_cell_state() {
            list.push((&plan.c_n, state_len, Precision::F32));
        }
        if backward {
            list.extend(self.grad_list(plan, need_input_grad));
        }
        list
    }

    /// Gradient buffers in the order `unpack_grads` takes them.
    fn grad_list<'p>(&'p self, plan: &'p Plan, need_input_grad: bool) -> Vec<Readback<'p>> {
        let cfg = &self.config;
        let state_len = cfg.num_layers * cfg.directions() * plan.batch * cfg.hidden_size;
        let mut list = vec![(&plan.grad_h0, state_len)];
        if cfg.mode.has_cell_state() {
            list.push((&plan.grad_c0, state_len));
        }
        if need_input_grad {
            list.push((&plan.grad_inputs[0], plan.seq * plan.batch * cfg.input_size));
        }
        let gh = cfg.gate_rows();
        for (k, cell) in self.params.cells.iter().enumerate() {
            let features = cfg.layer_input_size(k / cfg.directions());
            list.push((&cell.grad_w_ih, gh * features));
            list.push((&cell.grad_w_hh, gh * cfg.hidden_size));
            if cfg.bias {
                list.push((&cell.grad_b_ih, gh));
                list.push((&cell.grad_b_hh, gh));
            }
        }
        // Gradients exist for f32 models only.
        list.into_iter()
            .map(|(buffer, len)| (buffer, len, Precision::F32))
            .collect()
    }

    fn unpack(
        &self,
        values: &mut impl Iterator<Item = Vec<f32>>,
        seq: usize,
        batch: usize,
        backward: bool,
        need_input_grad: bool,
    ) -> (StackOutput<f32>, Option<StackGrads<f32>>) {
        let cfg = &self.config;
        let states = (cfg.num_layers * cfg.directions(), batch, cfg.hidden_size);
        let mut next3 = |dims: (usize, usize, usize)| {
            Array3::from_shape_vec(dims, values.next().expect("read back")).expect("sized")
        };
        let output = next3((seq, batch, cfg.output_size()));
        let h_n = next3(states);
        let c_n = cfg.mode.has_cell_state().then(|| next3(states));
        let grads = backward.then(|| self.unpack_grads(values, seq, batch, need_input_grad));
        (StackOutput { output, h_n, c_n }, grads)
    }

    fn unpack_grads(
        &self,
        values: &mut impl Iterator<Item = Vec<f32>>,
        seq: usize,
        batch: usize,
        need_input_grad: bool,
    ) -> StackGrads<f32> {
        let cfg = &self.config;
        let states = (cfg.num_layers * cfg.directions(), batch, cfg.hidden_size);
        let mut next = || values.next().expect("read back");
        let h0 = Array3::from_shape_vec(states, next()).expect("sized");
        let c0 = cfg
            .mode
            .has_cell_state()
            .then(|| Array3::from_shape_vec(states, next()).expect("sized"));
        let input = need_input_grad
            .then(|| Array3::from_shape_vec((seq, batch, cfg.input_size), next()).expect("sized"));
        let mut params = RnnParams::<f32>::zeros(cfg);
        for cell in &mut params.cells {
            let shape_ih = cell.weight_ih.raw_dim();
            cell.weight_ih = ndarray::Array2::from_shape_vec(shape_ih, next()).expect("sized");
            let shape_hh = cell.weight_hh.raw_dim();
            cell.weight_hh = ndarray::Array2::from_shape_vec(shape_hh, next()).expect("sized");
            if cfg.bias {
                cell.bias_ih = Some(ndarray::Array1::from_vec(next()));
                cell.bias_hh = Some(ndarray::Array1::from_vec(next()));
            }
        }
        StackGrads {
            input,
            h0,
            c0,
            params,
        }
    }
}
