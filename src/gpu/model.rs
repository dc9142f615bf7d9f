//! A recurrent stack on the GPU: parameters resident, plans per (T, B) leased from a bounded
//! cache, ndarray in and out (any `Real` element type at the seam; the kernels compute in f32).

use std::any::{Any, TypeId};
use std::sync::{Arc, Mutex};

use ndarray::{Array1, Array2, Array3, ArrayView3};

use super::context::GpuContext;
use super::optimizer::DeviceOptimizerState;
use super::params::GpuParams;
use super::plan::{DispatchCount, ForwardVariant, Plan};
use super::plan_cache::{PlanCache, PlanLease};
use super::submission::{ReadBack, ReadSlot, Submission};
use crate::Real;
use crate::config::RnnConfig;
use crate::engine::{StackGrads, StackInput, StackInputs, StackOutput, StackUpstream};
use crate::error::{Result, RnnError};
use crate::params::{CellParams, RnnParams};

/// The stack's parameters and plans on one device.
pub struct GpuModel {
    pub(super) ctx: Arc<GpuContext>,
    config: RnnConfig,
    pub(super) params: GpuParams,
    /// Adam moments for steps on the device, made on the first one.
    pub(super) optimizer: Mutex<Option<DeviceOptimizerState>>,
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

/// What one submission of a forward (and BPTT) returns: outputs and gradients when read back,
/// the tape of a forward asked to keep one.
pub struct GpuRun<T> {
    pub output: Option<StackOutput<T>>,
    pub grads: Option<StackGrads<T>>,
    pub tape: Option<GpuTape>,
}

/// Host values as the kernels read them: f32.
fn flat<T: Real>(x: ArrayView3<'_, T>) -> Vec<f32> {
    x.iter().map(|v| v.to_f32().unwrap_or(f32::NAN)).collect()
}

/// Read-back values as the model's element type; f32, the only one a `GpuModel` is made for,
/// moves through without a copy.
fn host_vec<T: Real>(values: Vec<f32>) -> Vec<T> {
    match (Box::new(values) as Box<dyn Any>).downcast::<Vec<T>>() {
        Ok(same) => *same,
        Err(values) => values
            .downcast::<Vec<f32>>()
            .expect("read back as f32")
            .into_iter()
            .map(|v| T::from(v).unwrap_or_else(T::nan))
            .collect(),
    }
}

/// (T, B, I) values of the first layer's input; token ids become the one-hot rows they stand
/// for (the GPU multiplies by them).
fn input_values<T: Real>(input: &StackInput<'_, T>, vocab: usize) -> Vec<f32> {
    match input {
        StackInput::Dense(x) => flat(x.view()),
        StackInput::Tokens(ids) => {
            let (values, _) =
                crate::tokens::one_hot_checked::<f32>(*ids, vocab).into_raw_vec_and_offset();
            values
        }
    }
}

impl GpuModel {
    /// Uploads `params`; with `f16`, for inference in f16 (the adapter must have
    /// SHADER_F16: see `GpuContext::has_f16`).
    pub fn new<T: Real>(
        ctx: Arc<GpuContext>,
        config: &RnnConfig,
        params: &RnnParams<T>,
        f16: bool,
    ) -> Result<Self> {
        if TypeId::of::<T>() != TypeId::of::<f32>() {
            return Err(RnnError::Unsupported(format!(
                "{} on the GPU (the kernels compute in f32)",
                T::NAME
            )));
        }
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
            optimizer: Mutex::new(None),
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
    pub fn update_params<T: Real>(&self, params: &RnnParams<T>) {
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

    /// Counts a submission; `dispatches` and `variant` are what a forward or BPTT recorded.
    pub(super) fn count_submission(
        &self,
        dispatches: Option<DispatchCount>,
        variant: Option<ForwardVariant>,
    ) {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.submissions += 1;
        if let Some(dispatches) = dispatches {
            stats.last = dispatches;
        }
        if variant.is_some() {
            stats.forward_variant = variant;
        }
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
}

/// Where a run's outputs will be in its read-back.
struct OutputSlots {
    output: ReadSlot,
    h_n: ReadSlot,
    c_n: Option<ReadSlot>,
}

/// Where a BPTT's gradients will be in its read-back; `params` per cell: W_ih, W_hh and, with
/// biases, b_ih, b_hh.
struct GradSlots {
    h0: ReadSlot,
    c0: Option<ReadSlot>,
    input: Option<ReadSlot>,
    params: Vec<[Option<ReadSlot>; 4]>,
}

impl GpuModel {
    /// Forward pass; with `upstream` (and whether to give the input gradient), BPTT too, in the
    /// same single submission. `keep_tape`: a forward without BPTT keeps its plan for the tape
    /// it returns. Without `read_back` nothing is read and the call waits for the device.
    pub fn run<T: Real>(
        &self,
        inputs: &StackInputs<'_, T>,
        upstream: Option<(StackUpstream<'_, T>, bool)>,
        keep_tape: bool,
        read_back: bool,
    ) -> Result<GpuRun<T>> {
        let (seq, batch) = inputs.seq_batch();
        if self.params.f16 && (upstream.is_some() || keep_tape) {
            return Err(f16_training());
        }
        let lease = keep_tape && upstream.is_none();
        let ((output, grads), lease) = self.with_plan(seq, batch, lease, |plan| {
            self.write_inputs(plan, inputs)?;
            let need_input_grad = upstream.as_ref().is_some_and(|(_, need)| *need);
            let mut submission = Submission::new(&self.ctx, "rnn step");
            let forward = submission.record("recording the forward pass", |encoder| {
                Ok(plan.record_forward(encoder))
            })?;
            let mut backward = 0;
            if let Some((grads, _)) = &upstream {
                self.write_upstream(plan, grads);
                backward = submission.record("recording the backward pass", |encoder| {
                    Ok(plan.record_backward(encoder, need_input_grad))
                })?;
            }
            let slots = read_back.then(|| {
                let outputs = self.read_outputs(&mut submission, plan);
                let grads = upstream
                    .is_some()
                    .then(|| self.read_grads(&mut submission, plan, need_input_grad));
                (outputs, grads)
            });
            let mut values = submission.submit_and_wait("submitting")?;
            let dispatches = DispatchCount { forward, backward };
            self.count_submission(Some(dispatches), Some(plan.forward_variant));
            let Some((outputs, grads)) = slots else {
                return Ok((None, None));
            };
            let output = self.unpack_outputs(&mut values, outputs, seq, batch);
            let grads = grads.map(|slots| self.unpack_grads(&mut values, slots, seq, batch));
            Ok((Some(output), grads))
        })?;
        let tape = lease.map(|lease| GpuTape { seq, batch, lease });
        Ok(GpuRun {
            output,
            grads,
            tape,
        })
    }

    /// BPTT through the forward that made `tape`, in one submission; every gradient read back.
    pub fn backward<T: Real>(
        &self,
        tape: GpuTape,
        upstream: StackUpstream<'_, T>,
        need_input_grad: bool,
    ) -> Result<StackGrads<T>> {
        let grads = self.record_backward(tape, upstream, Some(need_input_grad))?;
        Ok(grads.expect("read back when asked"))
    }

    /// BPTT through the forward that made `tape`, every gradient left on the device (for the
    /// device optimizers); nothing is read back.
    pub fn backward_in_place(&self, tape: GpuTape, upstream: StackUpstream<'_, f32>) -> Result<()> {
        self.record_backward(tape, upstream, None).map(drop)
    }

    /// One submission of BPTT; `read_back`: whether to read every gradient back, with the
    /// input gradient or not.
    fn record_backward<T: Real>(
        &self,
        tape: GpuTape,
        upstream: StackUpstream<'_, T>,
        read_back: Option<bool>,
    ) -> Result<Option<StackGrads<T>>> {
        if self.params.f16 {
            return Err(f16_training());
        }
        let need_input_grad = read_back.unwrap_or(false);
        // The tape is consumed: its plan is free for reuse once this returns.
        self.with_leased(&tape.lease, |plan| {
            self.write_upstream(plan, &upstream);
            let mut submission = Submission::new(&self.ctx, "rnn backward");
            let backward = submission.record("recording the backward pass", |encoder| {
                Ok(plan.record_backward(encoder, need_input_grad))
            })?;
            let slots = read_back.map(|_| self.read_grads(&mut submission, plan, need_input_grad));
            let mut values = submission.submit("submitting")?;
            let dispatches = DispatchCount {
                forward: 0,
                backward,
            };
            self.count_submission(Some(dispatches), None);
            Ok(slots.map(|slots| self.unpack_grads(&mut values, slots, tape.seq, tape.batch)))
        })
    }

    /// Writes what a forward reads into `plan`'s buffers.
    fn write_inputs<T: Real>(&self, plan: &mut Plan, inputs: &StackInputs<'_, T>) -> Result<()> {
        let ctx = &self.ctx;
        let (seq, batch) = inputs.seq_batch();
        let steps: Vec<u32> = match inputs.lengths {
            Some(lengths) => lengths.iter().map(|&len| len as u32).collect(),
            None => vec![seq as u32; batch],
        };
        let input = input_values(&inputs.input, self.config.input_size);
        ctx.write_in(&plan.input, &input, plan.activations);
        ctx.write_u32(&plan.lengths, &steps);
        ctx.write(&plan.h0, &flat(inputs.h0.view()));
        if let Some(c0) = &inputs.c0 {
            ctx.write(&plan.c0, &flat(c0.view()));
        }
        self.write_masks(plan, &inputs.dropout)
    }

    /// The training draw's masks, or ones for a forward without dropout (written once).
    /// masks: empty or one (T, B, D*H) per layer but the last
    fn write_masks<T: Real>(&self, plan: &mut Plan, masks: &[Array3<T>]) -> Result<()> {
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

    fn write_upstream<T: Real>(&self, plan: &Plan, upstream: &StackUpstream<'_, T>) {
        let ctx = &self.ctx;
        ctx.write(&plan.grad_output, &flat(upstream.output.view()));
        ctx.write(&plan.grad_h_n, &flat(upstream.h_n.view()));
        if let Some(c_n) = &upstream.c_n {
            ctx.write(&plan.grad_c_n, &flat(c_n.view()));
        }
    }

    /// (L*D * B * H): the values of a state for a batch of `batch`.
    fn state_len(&self, batch: usize) -> usize {
        let cfg = &self.config;
        cfg.num_layers * cfg.directions() * batch * cfg.hidden_size
    }

    /// Asks `submission` for the output and final states.
    fn read_outputs<'p>(&self, submission: &mut Submission<'_, 'p>, plan: &'p Plan) -> OutputSlots {
        let output = plan.outputs.last().expect("at least one layer");
        let output_len = plan.seq * plan.batch * self.config.output_size();
        let state_len = self.state_len(plan.batch);
        OutputSlots {
            output: submission.read(output, output_len, plan.activations),
            h_n: submission.read_f32(&plan.h_n, state_len),
            c_n: self
                .config
                .mode
                .has_cell_state()
                .then(|| submission.read_f32(&plan.c_n, state_len)),
        }
    }

    /// Asks `submission` for every gradient (gradients exist for f32 models only).
    fn read_grads<'p>(
        &'p self,
        submission: &mut Submission<'_, 'p>,
        plan: &'p Plan,
        need_input_grad: bool,
    ) -> GradSlots {
        let cfg = &self.config;
        let state_len = self.state_len(plan.batch);
        let input_len = plan.seq * plan.batch * cfg.input_size;
        let gh = cfg.gate_rows();
        let params = self
            .params
            .cells
            .iter()
            .enumerate()
            .map(|(k, cell)| {
                let features = cfg.layer_input_size(k / cfg.directions());
                let bias = |buffer, submission: &mut Submission<'_, 'p>| {
                    cfg.bias.then(|| submission.read_f32(buffer, gh))
                };
                [
                    Some(submission.read_f32(&cell.grad_w_ih, gh * features)),
                    Some(submission.read_f32(&cell.grad_w_hh, gh * cfg.hidden_size)),
                    bias(&cell.grad_b_ih, submission),
                    bias(&cell.grad_b_hh, submission),
                ]
            })
            .collect();
        GradSlots {
            h0: submission.read_f32(&plan.grad_h0, state_len),
            c0: cfg
                .mode
                .has_cell_state()
                .then(|| submission.read_f32(&plan.grad_c0, state_len)),
            input: need_input_grad.then(|| submission.read_f32(&plan.grad_inputs[0], input_len)),
            params,
        }
    }

    fn unpack_outputs<T: Real>(
        &self,
        values: &mut ReadBack,
        slots: OutputSlots,
        seq: usize,
        batch: usize,
    ) -> StackOutput<T> {
        let cfg = &self.config;
        let states = (cfg.num_layers * cfg.directions(), batch, cfg.hidden_size);
        let mut take = |slot, dims| array3(values.take(slot), dims);
        StackOutput {
            output: take(slots.output, (seq, batch, cfg.output_size())),
            h_n: take(slots.h_n, states),
            c_n: slots.c_n.map(|slot| take(slot, states)),
        }
    }

    fn unpack_grads<T: Real>(
        &self,
        values: &mut ReadBack,
        slots: GradSlots,
        seq: usize,
        batch: usize,
    ) -> StackGrads<T> {
        let cfg = &self.config;
        let states = (cfg.num_layers * cfg.directions(), batch, cfg.hidden_size);
        let cells = slots
            .params
            .into_iter()
            .enumerate()
            .map(|(k, [w_ih, w_hh, b_ih, b_hh])| {
                let features = cfg.layer_input_size(k / cfg.directions());
                let mut matrix = |slot: Option<ReadSlot>, cols| {
                    let values = host_vec(values.take(slot.expect("weights are read")));
                    Array2::from_shape_vec((cfg.gate_rows(), cols), values).expect("sized")
                };
                let (weight_ih, weight_hh) =
                    (matrix(w_ih, features), matrix(w_hh, cfg.hidden_size));
                let mut vector = |slot: Option<ReadSlot>| {
                    slot.map(|slot| Array1::from_vec(host_vec(values.take(slot))))
                };
                CellParams {
                    weight_ih,
                    weight_hh,
                    bias_ih: vector(b_ih),
                    bias_hh: vector(b_hh),
                }
            })
            .collect();
        StackGrads {
            h0: array3(values.take(slots.h0), states),
            c0: slots.c0.map(|slot| array3(values.take(slot), states)),
            input: slots
                .input
                .map(|slot| array3(values.take(slot), (seq, batch, cfg.input_size))),
            params: RnnParams { cells },
        }
    }
}

fn array3<T: Real>(values: Vec<f32>, dims: (usize, usize, usize)) -> Array3<T> {
    Array3::from_shape_vec(dims, host_vec(values)).expect("read back at its size")
}

fn f16_training() -> RnnError {
    RnnError::Unsupported("training an f16 model (f16 is for inference)".into())
}
