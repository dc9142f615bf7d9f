//! Optimizer steps on the device: Adam / AdamW (shaders/adam.wgsl) or SGD with momentum
//! (shaders/sgd.wgsl) over every parameter of a `GpuModel` with the gradient its last backward
//! left there, the moments resident beside them (SGD's momentum buffer is Adam's first moment),
//! and each gradient's sum of squares for global-norm clipping (shaders/sum_squares.wgsl).
//! Only those sums come back to the host; parameters are read back only when asked for
//! (checkpoints).

use bytemuck::{Pod, Zeroable};

use super::buffers::{Precision, Readback};
use super::context::GpuContext;
use super::kernels::Kernel;
use super::model::GpuModel;
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
    pad: [f32; 5],
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
    sum: wgpu::BindGroup,
    grid: (u32, u32, u32),
}

/// Moments and bind groups of every parameter, made on first use.
pub struct DeviceAdam {
    /// (len) per tensor, in `named()` order: first and second moments
    m: Vec<wgpu::Buffer>,
    v: Vec<wgpu::Buffer>,
    lens: Vec<usize>,
    /// `Hyper`, rewritten before each step
    hyper: wgpu::Buffer,
    /// (tensors): each gradient's sum of squares
    sums: wgpu::Buffer,
    slots: Vec<Slot>,
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

    fn new_device_adam(&self) -> Result<DeviceAdam> {
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
            let adam = ctx.bind_group(
                Kernel::Adam,
                &[&hyper, &uniform, param, grad, &m_k, &v_k, param_t],
            )?;
            let sum = ctx.bind_group(Kernel::SumSquares, &[&uniform, grad, &sums])?;
            slots.push(Slot {
                adam,
                sum,
                grid: (x, len.div_ceil(row) as u32, 1),
            });
            m.push(m_k);
            v.push(v_k);
            lens.push(len);
        }
        Ok(DeviceAdam {
            m,
            v,
            lens,
            hyper,
            sums,
            slots,
        })
    }

    /// Runs `f` on the device optimizer state, made on first use.
    fn with_device_adam<R>(&self, f: impl FnOnce(&DeviceAdam) -> Result<R>) -> Result<R> {
        let mut state = self.adam.lock().unwrap_or_else(|p| p.into_inner());
        if state.is_none() {
            *state = Some(self.new_device_adam()?);
        }
        f(state.as_ref().expect("made above"))
    }

    /// Each parameter gradient's sum of squares, in `named()` order, from the gradients the last
    /// backward left on the device (one submission; only these sums are read back).
    pub fn grad_square_sums(&self) -> Result<Vec<f32>> {
        let ctx = &self.ctx;
        self.with_device_adam(|state| {
            let mut encoder = encoder(ctx, "gradient norms");
            record(ctx, &mut encoder, Kernel::SumSquares, state, |s| {
                (&s.sum, (1, 1, 1))
            })?;
            let reads: Vec<Readback<'_>> = vec![(&state.sums, state.slots.len(), Precision::F32)];
            let staging = ctx.stage_copies(&mut encoder, &reads)?;
            ctx.checked("submitting", || ctx.queue.submit([encoder.finish()]))?;
            Ok(ctx.read_staging(&staging, &reads)?.remove(0))
        })
    }

    /// One Adam / AdamW step of every parameter from the gradients the last backward left on
    /// the device, each first multiplied by `grad_scale` (the global-norm clip factor, or 1),
    /// with `adam`'s hyperparameters at its step count `adam.step` (already counting this
    /// step). One submission, nothing read back; `adam`'s own moments are not touched.
    pub fn adam_step(&self, adam: &Adam, grad_scale: f32) -> Result<()> {
        let ctx = &self.ctx;
        let t = i32::try_from(adam.step.max(1)).unwrap_or(i32::MAX);
        let hyper = Hyper {
            step_size: adam.lr / (1.0 - adam.beta1.powi(t)),
            beta1: adam.beta1,
            beta2: adam.beta2,
            eps: adam.eps,
            bias2_sqrt: (1.0 - adam.beta2.powi(t)).sqrt(),
            decay: 1.0 - adam.lr * adam.weight_decay,
            scale: grad_scale,
            pad: 0.0,
        };
        self.with_device_adam(|state| {
            ctx.queue
                .write_buffer(&state.hyper, 0, bytemuck::bytes_of(&hyper));
            let mut encoder = encoder(ctx, "adam step");
            record(ctx, &mut encoder, Kernel::Adam, state, |s| {
                (&s.adam, s.grid)
            })?;
            ctx.checked("submitting", || ctx.queue.submit([encoder.finish()]))?;
            Ok(())
        })
    }

    /// The device's parameters (as training left them), read back.
    pub fn read_params(&self) -> Result<RnnParams<f32>> {
        let tensors = self.tensors();
        let reads: Vec<Readback<'_>> = tensors
            .iter()
            .map(|&(param, _, len, _)| (param, len, Precision::F32))
            .collect();
        let mut params = RnnParams::zeros(self.config());
        for (dst, src) in params.slices_mut().into_iter().zip(self.read(&reads)?) {
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
        let ctx = &self.ctx;
        let hyper = SgdHyper {
            lr: sgd.lr,
            momentum: sgd.momentum,
            scale: grad_scale,
            pad: [0.0; 5],
        };
        self.with_device_adam(|state| {
            ctx.queue
                .write_buffer(&state.hyper, 0, bytemuck::bytes_of(&hyper));
            let mut encoder = encoder(ctx, "sgd step");
            record(ctx, &mut encoder, Kernel::Sgd, state, |s| (&s.adam, s.grid))?;
            ctx.checked("submitting", || ctx.queue.submit([encoder.finish()]))?;
            Ok(())
        })
    }

    /// The Adam moments (m, v), one vector per parameter in `named()` order; `None` before the
    /// first device step. After SGD steps, m holds the momentum buffers.
    #[allow(clippy::type_complexity)]
    pub fn read_moments(&self) -> Result<Option<(Vec<Vec<f32>>, Vec<Vec<f32>>)>> {
        let state = self.adam.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = state.as_ref() else {
            return Ok(None);
        };
        let reads: Vec<Readback<'_>> = state
            .m
            .iter()
            .chain(&state.v)
            .zip(state.lens.iter().chain(&state.lens))
            .map(|(buffer, &len)| (buffer, len, Precision::F32))
            .collect();
        let mut values = self.read(&reads)?;
        let v = values.split_off(state.m.len());
        Ok(Some((values, v)))
    }

    /// Sets the Adam moments (as `read_moments` returns them), e.g. from a checkpoint.
    pub fn write_moments(&self, m: &[Vec<f32>], v: &[Vec<f32>]) -> Result<()> {
        self.with_device_adam(|state| {
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
            Ok(())
        })
    }

    /// Reads `reads` back in one submission.
    fn read(&self, reads: &[Readback<'_>]) -> Result<Vec<Vec<f32>>> {
        let ctx = &self.ctx;
        let mut encoder = encoder(ctx, "readback");
        let staging = ctx.stage_copies(&mut encoder, reads)?;
        ctx.checked("submitting", || ctx.queue.submit([encoder.finish()]))?;
        ctx.read_staging(&staging, reads)
    }
}

fn encoder(ctx: &GpuContext, label: &str) -> wgpu::CommandEncoder {
    ctx.device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
}

/// One dispatch of `kernel` per parameter tensor, with the bind group and grid `pick` gives.
fn record(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    kernel: Kernel,
    state: &DeviceAdam,
    pick: impl Fn(&Slot) -> (&wgpu::BindGroup, (u32, u32, u32)),
) -> Result<()> {
    let compiled = ctx.kernel(kernel)?;
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("optimizer"),
        timestamp_writes: None,
    });
    pass.set_pipeline(&compiled.pipeline);
    for slot in &state.slots {
        let (group, (x, y, z)) = pick(slot);
        pass.set_bind_group(0, group, &[]);
        pass.dispatch_workgroups(x, y, z);
    }
    Ok(())
}
