//! Optimizer steps on the device: Adam / AdamW (shaders/adam.wgsl) or SGD with momentum
//! (shaders/sgd.wgsl) over every parameter of a `GpuModel` with the gradient its last backward
//! left there, the moments resident beside them (SGD's momentum buffer is Adam's first moment),
//! and each gradient's sum of squares for global-norm clipping (shaders/sum_squares.wgsl).
//! Only those sums come back to the host; parameters are read back only when asked for
//! (checkpoints).

use bytemuck::{Pod, Zeroable};

use std::sync::Arc;

use super::kernels::{CompiledKernel, Kernel};
use super::model::GpuModel;
use super::submission::Submission;
use crate::error::{Result, RnnError};
use crate::optim::{Adam, Sgd};
use crate::params::RnnParams;

/// Matches `Hyper` in shaders/adam.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Hyper {
    step_size: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias2_sqrt: f32,
    decay: f32,
    scale: f32,
    pad: f32,
}

/// Matches `Hyper` in shaders/sgd.wgsl: the same size as Adam's, so one uniform buffer serves
/// both.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SgdHyper {
    lr: f32,
    momentum: f32,
    scale: f32,
    weight_decay: f32,
    nesterov: f32,
    pad: [f32; 3],
}

/// Matches `Tensor` in shaders/optimizer_tensor.wgsl (the optimizer kernels' shared prelude).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct TensorParams {
    len: u32,
    row: u32,
    cols: u32,
    transposed: u32,
    slot: u32,
    pad: [u32; 3],
}

/// The bind groups of one parameter tensor.
struct Slot {
    adam: wgpu::BindGroup,
    sgd: wgpu::BindGroup,
    sum: wgpu::BindGroup,
    grid: (u32, u32, u32),
}

/// The optimizer kernels, compiled.
struct Pipelines {
    adam: Arc<CompiledKernel>,
    sgd: Arc<CompiledKernel>,
    sum: Arc<CompiledKernel>,
}

/// The optimizer state on the device: moments (SGD's momentum buffer is m), the number of
/// Adam steps taken there, and the bind groups of every parameter; made on first use.
pub struct DeviceOptimizerState {
    /// Adam steps taken on the device: the next one is step `adam_steps + 1`.
    adam_steps: u64,
    /// (len) per tensor, in `named()` order: first and second moments
    m: Vec<wgpu::Buffer>,
    v: Vec<wgpu::Buffer>,
    lens: Vec<usize>,
    /// `Hyper`, rewritten before each step
    hyper: wgpu::Buffer,
    /// (tensors): each gradient's sum of squares
    sums: wgpu::Buffer,
    slots: Vec<Slot>,
    pipelines: Pipelines,
}

/// The device optimizer state as the host sees it (checkpoints): m and v, one vector per
/// parameter in `named()` order, and the Adam steps taken.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceMoments {
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
    pub adam_steps: u64,
}

/// A parameter tensor, its gradient, and the transposed copy (with its column count) kept in
/// step with it.
type Tensor<'a> = (
    &'a wgpu::Buffer,
    &'a wgpu::Buffer,
    usize,
    Option<(&'a wgpu::Buffer, usize)>,
);

impl GpuModel {
    /// Every parameter tensor in `named()` order.
    fn tensors(&self) -> Vec<Tensor<'_>> {
        let cfg = self.config();
        let (gh, h) = (cfg.gate_rows(), cfg.hidden_size);
        let mut list = Vec::new();
        for (k, cell) in self.params.cells.iter().enumerate() {
            let features = cfg.layer_input_size(k / cfg.directions());
            list.push((&cell.w_ih, &cell.grad_w_ih, gh * features, None));
            list.push((&cell.w_hh, &cell.grad_w_hh, gh * h, Some((&cell.w_hh_t, h))));
            if cfg.bias {
                list.push((&cell.b_ih, &cell.grad_b_ih, gh, None));
                list.push((&cell.b_hh, &cell.grad_b_hh, gh, None));
            }
        }
        list
    }

    fn new_optimizer_state(&self) -> Result<DeviceOptimizerState> {
        let ctx = &self.ctx;
        if self.params.f16 {
            return Err(RnnError::Unsupported(
                "training an f16 model (f16 is for inference)".into(),
            ));
        }
        let tensors = self.tensors();
        let unused = ctx.zeros("unused transposed copy", 1)?;
        let hyper = ctx.checked("adam hyperparameters", || {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("adam hyperparameters"),
                size: std::mem::size_of::<Hyper>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let sums = ctx.zeros("gradient sums of squares", tensors.len())?;
        let pipelines = Pipelines {
            adam: ctx.kernel(Kernel::Adam)?,
            sgd: ctx.kernel(Kernel::Sgd)?,
            sum: ctx.kernel(Kernel::SumSquares)?,
        };
        let max_groups = ctx.limits.max_compute_workgroups_per_dimension;
        let (mut m, mut v, mut lens, mut slots) = (vec![], vec![], vec![], vec![]);
        for (slot, &(param, grad, len, transposed)) in tensors.iter().enumerate() {
            let x = (len.div_ceil(256) as u32).clamp(1, max_groups);
            let row = x as usize * 256;
            let params = TensorParams {
                len: len as u32,
                row: row as u32,
                cols: transposed.map_or(1, |(_, cols)| cols as u32),
                transposed: transposed.is_some() as u32,
                slot: slot as u32,
                pad: [0; 3],
            };
            let uniform = ctx.uniform("adam tensor", bytemuck::bytes_of(&params))?;
            let (m_k, v_k) = (ctx.zeros("adam m", len)?, ctx.zeros("adam v", len)?);
            let param_t = transposed.map_or(&unused, |(t, _)| t);
            let named = [
                ("h", &hyper),
                ("t", &uniform),
                ("param", param),
                ("grad", grad),
                ("m", &m_k),
                ("v", &v_k),
                ("param_t", param_t),
            ];
            // SGD's momentum buffer is m; it has no second moment.
            let sgd_named: Vec<_> = named.into_iter().filter(|(name, _)| *name != "v").collect();
            let sum = [("t", &uniform), ("grad", grad), ("sums", &sums)];
            slots.push(Slot {
                adam: ctx.bind_group(&pipelines.adam, &named)?,
                sgd: ctx.bind_group(&pipelines.sgd, &sgd_named)?,
                sum: ctx.bind_group(&pipelines.sum, &sum)?,
                grid: (x, len.div_ceil(row) as u32, 1),
            });
            m.push(m_k);
            v.push(v_k);
            lens.push(len);
        }
        Ok(DeviceOptimizerState {
            adam_steps: 0,
            m,
            v,
            lens,
            hyper,
            sums,
            slots,
            pipelines,
        })
    }

    /// Runs `f` on the device optimizer state, made on first use.
    fn with_optimizer_state<R>(
        &self,
        f: impl FnOnce(&mut DeviceOptimizerState) -> Result<R>,
    ) -> Result<R> {
        let mut state = self.optimizer.lock().unwrap_or_else(|p| p.into_inner());
        if state.is_none() {
            *state = Some(self.new_optimizer_state()?);
        }
        f(state.as_mut().expect("made above"))
    }

    /// Each parameter gradient's sum of squares, in `named()` order, from the gradients the last
    /// backward left on the device (one submission; only these sums are read back).
    pub fn grad_square_sums(&self) -> Result<Vec<f32>> {
        self.with_optimizer_state(|state| {
            let mut submission = Submission::new(&self.ctx, "gradient norms");
            submission.record("recording gradient norms", |encoder| {
                record(encoder, &state.pipelines.sum, state, |s| {
                    (&s.sum, (1, 1, 1))
                });
                Ok(())
            })?;
            let sums = submission.read_f32(&state.sums, state.slots.len());
            let mut values = submission.submit("submitting gradient norms")?;
            self.count_submission(None, None);
            Ok(values.take(sums))
        })
    }

    /// One Adam / AdamW step of every parameter from the gradients the last backward left on
    /// the device, each first multiplied by `grad_scale` (the global-norm clip factor, or 1),
    /// with `adam`'s hyperparameters. The device counts its own steps for the bias correction;
    /// `adam`'s step count and moments are not used. One submission, nothing read back.
    pub fn adam_step(&self, adam: &Adam, grad_scale: f32) -> Result<()> {
        self.with_optimizer_state(|state| {
            let step = state.adam_steps + 1;
            let c = adam.coefficients(step);
            let hyper = Hyper {
                step_size: c.step_size,
                beta1: adam.beta1,
                beta2: adam.beta2,
                eps: adam.eps,
                bias2_sqrt: c.bias2_sqrt,
                decay: c.decay,
                scale: grad_scale,
                pad: 0.0,
            };
            self.ctx
                .queue
                .write_buffer(&state.hyper, 0, bytemuck::bytes_of(&hyper));
            let mut submission = Submission::new(&self.ctx, "adam step");
            submission.record("recording an adam step", |encoder| {
                record(encoder, &state.pipelines.adam, state, |s| (&s.adam, s.grid));
                Ok(())
            })?;
            submission.submit("submitting an adam step")?;
            self.count_submission(None, None);
            state.adam_steps = step;
            Ok(())
        })
    }

    /// The device's parameters (as training left them), read back.
    pub fn read_params(&self) -> Result<RnnParams<f32>> {
        let tensors = self.tensors();
        let values = self.read_buffers(tensors.iter().map(|(param, _, len, _)| (*param, len)))?;
        let mut params = RnnParams::zeros(self.config());
        for (dst, src) in params.slices_mut().into_iter().zip(values) {
            dst.copy_from_slice(&src);
        }
        Ok(params)
    }

    /// One SGD-with-momentum step of every parameter from the gradients the last backward left
    /// on the device, each first multiplied by `grad_scale` (the global-norm clip factor, or 1).
    /// The momentum buffers are the device moments' m, zero before the first step (so the first
    /// step's buffer is the gradient, as PyTorch starts it). One submission, nothing read back;
    /// `sgd`'s own buffers are not touched.
    pub fn sgd_step(&self, sgd: &Sgd, grad_scale: f32) -> Result<()> {
        let hyper = SgdHyper {
            lr: sgd.lr,
            momentum: sgd.momentum,
            scale: grad_scale,
            weight_decay: sgd.weight_decay,
            nesterov: if sgd.nesterov { 1.0 } else { 0.0 },
            pad: [0.0; 3],
        };
        self.with_optimizer_state(|state| {
            self.ctx
                .queue
                .write_buffer(&state.hyper, 0, bytemuck::bytes_of(&hyper));
            let mut submission = Submission::new(&self.ctx, "sgd step");
            submission.record("recording an sgd step", |encoder| {
                record(encoder, &state.pipelines.sgd, state, |s| (&s.sgd, s.grid));
                Ok(())
            })?;
            submission.submit("submitting an sgd step")?;
            self.count_submission(None, None);
            Ok(())
        })
    }

    /// The optimizer state (moments and Adam steps), read back; `None` before the first device
    /// step. After SGD steps, m holds the momentum buffers.
    pub fn read_moments(&self) -> Result<Option<DeviceMoments>> {
        let state = self.optimizer.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = state.as_ref() else {
            return Ok(None);
        };
        let moments = self.read_buffers(
            state
                .m
                .iter()
                .chain(&state.v)
                .zip(state.lens.iter().chain(&state.lens)),
        )?;
        let mut m = moments;
        let v = m.split_off(state.m.len());
        Ok(Some(DeviceMoments {
            m,
            v,
            adam_steps: state.adam_steps,
        }))
    }

    /// Sets the optimizer state (as `read_moments` returns it), e.g. from a checkpoint.
    pub fn write_moments(&self, moments: &DeviceMoments) -> Result<()> {
        let DeviceMoments { m, v, adam_steps } = moments;
        self.with_optimizer_state(|state| {
            let wrong = |k: usize, got: &Vec<f32>| got.len() != state.lens[k];
            let bad = (m.len() != state.lens.len() || v.len() != state.lens.len())
                .then_some(0)
                .or_else(|| (0..m.len()).find(|&k| wrong(k, &m[k]) || wrong(k, &v[k])));
            if let Some(k) = bad {
                return Err(RnnError::Shape {
                    tensor: format!("Adam moments of parameter {k}"),
                    expected: format!("{} tensors of lengths {:?}", state.lens.len(), state.lens),
                    got: m.iter().map(Vec::len).collect(),
                });
            }
            for ((buffer_m, buffer_v), (m, v)) in state.m.iter().zip(&state.v).zip(m.iter().zip(v))
            {
                self.ctx.write(buffer_m, m);
                self.ctx.write(buffer_v, v);
            }
            state.adam_steps = *adam_steps;
            Ok(())
        })
    }

    /// Reads each (buffer, length) back, in one submission.
    fn read_buffers<'b>(
        &self,
        buffers: impl Iterator<Item = (&'b wgpu::Buffer, &'b usize)>,
    ) -> Result<Vec<Vec<f32>>> {
        let mut submission = Submission::new(&self.ctx, "readback");
        let slots: Vec<_> = buffers
            .map(|(buffer, &len)| submission.read_f32(buffer, len))
            .collect();
        let mut values = submission.submit("submitting a readback")?;
        self.count_submission(None, None);
        Ok(slots.into_iter().map(|slot| values.take(slot)).collect())
    }
}

/// One dispatch of `kernel` per parameter tensor, with the bind group and grid `pick` gives.
fn record(
    encoder: &mut wgpu::CommandEncoder,
    kernel: &CompiledKernel,
    state: &DeviceOptimizerState,
    pick: impl Fn(&Slot) -> (&wgpu::BindGroup, (u32, u32, u32)),
) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("optimizer"),
        timestamp_writes: None,
    });
    pass.set_pipeline(&kernel.pipeline);
    for slot in &state.slots {
        let (group, (x, y, z)) = pick(slot);
        pass.set_bind_group(0, group, &[]);
        pass.dispatch_workgroups(x, y, z);
    }
}
