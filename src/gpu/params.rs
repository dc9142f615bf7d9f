//! Parameters and their gradients, resident on the device for the model's lifetime.

use super::buffers::Precision;
use super::context::GpuContext;
use crate::Real;
use crate::config::RnnConfig;
use crate::error::Result;
use crate::params::{CellParams, RnnParams};

/// One layer and direction on the device.
pub struct GpuCell {
    /// (G*H, in)
    pub w_ih: wgpu::Buffer,
    /// (G*H, H)
    pub w_hh: wgpu::Buffer,
    /// (H, G*H): W_hh transposed, so the fused step reads it coalesced along hidden units
    pub w_hh_t: wgpu::Buffer,
    /// (G*H); zeros when the stack has no bias
    pub b_ih: wgpu::Buffer,
    /// (G*H)
    pub b_hh: wgpu::Buffer,
    /// Gradients, same shapes.
    pub grad_w_ih: wgpu::Buffer,
    pub grad_w_hh: wgpu::Buffer,
    pub grad_b_ih: wgpu::Buffer,
    pub grad_b_hh: wgpu::Buffer,
}

/// Row-major data of a cell's four tensors, W_hh also transposed.
fn host_data<T: Real>(cell: &CellParams<T>) -> [Vec<f32>; 5] {
    let gh = cell.weight_hh.nrows();
    let values = |x: ndarray::ArrayView2<'_, T>| -> Vec<f32> {
        x.iter().map(|v| v.to_f32().unwrap_or(f32::NAN)).collect()
    };
    let bias = |b: &Option<ndarray::Array1<T>>| match b {
        Some(b) => b.iter().map(|v| v.to_f32().unwrap_or(f32::NAN)).collect(),
        None => vec![0.0; gh],
    };
    [
        values(cell.weight_ih.view()),
        values(cell.weight_hh.view()),
        values(cell.weight_hh.t()),
        bias(&cell.bias_ih),
        bias(&cell.bias_hh),
    ]
}

/// Every cell of a stack on the device.
pub struct GpuParams {
    pub cells: Vec<GpuCell>,
    /// Inference with f16 weights: W_ih and W_hh^T are f16; W_hh and the gradient buffers,
    /// which only training reads, are one-element placeholders.
    pub f16: bool,
}

impl GpuParams {
    pub fn upload<T: Real>(
        ctx: &GpuContext,
        config: &RnnConfig,
        params: &RnnParams<T>,
        f16: bool,
    ) -> Result<Self> {
        let mut cells = Vec::with_capacity(params.cells.len());
        for (k, cell) in params.cells.iter().enumerate() {
            let name = |what: &str| format!("{what} of cell {k}");
            let [w_ih, w_hh, w_hh_t, b_ih, b_hh] = host_data(cell);
            if f16 {
                cells.push(GpuCell {
                    grad_w_ih: ctx.zeros(&name("grad weight_ih"), 1)?,
                    grad_w_hh: ctx.zeros(&name("grad weight_hh"), 1)?,
                    grad_b_ih: ctx.zeros(&name("grad bias_ih"), 1)?,
                    grad_b_hh: ctx.zeros(&name("grad bias_hh"), 1)?,
                    w_ih: ctx.upload_f16(&name("weight_ih (f16)"), &w_ih)?,
                    w_hh: ctx.zeros(&name("weight_hh"), 1)?,
                    w_hh_t: ctx.upload_f16(&name("weight_hh transposed (f16)"), &w_hh_t)?,
                    b_ih: ctx.upload(&name("bias_ih"), &b_ih)?,
                    b_hh: ctx.upload(&name("bias_hh"), &b_hh)?,
                });
                continue;
            }
            let gh = config.gate_rows();
            cells.push(GpuCell {
                grad_w_ih: ctx.zeros(&name("grad weight_ih"), w_ih.len())?,
                grad_w_hh: ctx.zeros(&name("grad weight_hh"), w_hh.len())?,
                grad_b_ih: ctx.zeros(&name("grad bias_ih"), gh)?,
                grad_b_hh: ctx.zeros(&name("grad bias_hh"), gh)?,
                w_ih: ctx.upload(&name("weight_ih"), &w_ih)?,
                w_hh: ctx.upload(&name("weight_hh"), &w_hh)?,
                w_hh_t: ctx.upload(&name("weight_hh transposed"), &w_hh_t)?,
                b_ih: ctx.upload(&name("bias_ih"), &b_ih)?,
                b_hh: ctx.upload(&name("bias_hh"), &b_hh)?,
            });
        }
        Ok(GpuParams { cells, f16 })
    }

    /// Bytes of every buffer held for the parameters (weights, transposed W_hh, gradients).
    pub fn bytes(&self) -> u64 {
        self.cells
            .iter()
            .flat_map(|c| {
                [
                    &c.w_ih,
                    &c.w_hh,
                    &c.w_hh_t,
                    &c.b_ih,
                    &c.b_hh,
                    &c.grad_w_ih,
                    &c.grad_w_hh,
                    &c.grad_b_ih,
                    &c.grad_b_hh,
                ]
            })
            .map(|b| b.size())
            .sum()
    }

    /// Overwrites the device copies in place (buffers, and so every bind group, stay valid).
    pub fn update<T: Real>(&self, ctx: &GpuContext, params: &RnnParams<T>) {
        for (gpu, cell) in self.cells.iter().zip(&params.cells) {
            let [w_ih, w_hh, w_hh_t, b_ih, b_hh] = host_data(cell);
            if self.f16 {
                ctx.write_in(&gpu.w_ih, &w_ih, Precision::F16);
                ctx.write_in(&gpu.w_hh_t, &w_hh_t, Precision::F16);
            } else {
                ctx.write(&gpu.w_ih, &w_ih);
                ctx.write(&gpu.w_hh, &w_hh);
                ctx.write(&gpu.w_hh_t, &w_hh_t);
            }
            ctx.write(&gpu.b_ih, &b_ih);
            ctx.write(&gpu.b_hh, &b_hh);
        }
    }
}
