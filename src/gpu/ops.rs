//! One builder per kernel: each takes the buffers its op reads and writes, writes its uniform,
//! and returns a `Call` holding the compiled pipeline, the bind group and the grid, so that
//! recording a call is three commands with nothing to look up.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use super::context::GpuContext;
use super::kernels::{
    CompiledKernel, Kernel, MATMUL_TILE_COLS, MATMUL_TILE_ROWS, STEP_ADD_DIRECT, STEP_RELU,
    STEP_REVERSE, STEP_UNIFORM_STRIDE,
};
use crate::conventions::Mode;
use crate::error::Result;

/// A dispatch ready to record: pipeline, bind group and grid.
pub struct Call {
    pub pipeline: Arc<CompiledKernel>,
    pub group: wgpu::BindGroup,
    pub grid: (u32, u32, u32),
}

impl Call {
    /// Compiles `kernel` (once per device) and binds `buffers` to it by name.
    pub fn new(
        ctx: &GpuContext,
        kernel: Kernel,
        buffers: &[(&str, &wgpu::Buffer)],
        grid: (u32, u32, u32),
    ) -> Result<Call> {
        let pipeline = ctx.kernel(kernel)?;
        let group = ctx.bind_group(&pipeline, buffers)?;
        Ok(Call {
            pipeline,
            group,
            grid,
        })
    }
}

/// Workgroups to cover `n` items at `per` a workgroup.
pub fn groups(n: usize, per: u32) -> u32 {
    n.div_ceil(per as usize) as u32
}

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

/// An operand of a matrix product: buffer, offset, row and column strides (in elements).
pub struct Operand<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

pub fn operand(
    buffer: &wgpu::Buffer,
    offset: usize,
    row_stride: usize,
    col_stride: usize,
) -> Operand<'_> {
    Operand {
        buffer,
        offset,
        row_stride,
        col_stride,
    }
}

/// What a matrix product reads and writes: c (m, n) = a (m, k) · b (k, n) [+ c] [+ biases].
pub struct Matmul<'a> {
    /// (m, n, k)
    pub dims: (usize, usize, usize),
    pub a: Operand<'a>,
    pub b: Operand<'a>,
    pub c: Operand<'a>,
    /// `MATMUL_ACCUMULATE`, `MATMUL_BIAS_A`, `MATMUL_BIAS_B`
    pub flags: u32,
    /// (N) each; bound whether or not the flags add them
    pub bias_a: &'a wgpu::Buffer,
    pub bias_b: &'a wgpu::Buffer,
    /// A, B and C stored f16 (f16 inference)
    pub f16: bool,
}

/// shaders/matmul.wgsl: a tile of TM x TN of C per workgroup.
pub fn matmul(ctx: &GpuContext, product: Matmul<'_>) -> Result<Call> {
    let Matmul {
        dims: (m, n, k),
        a,
        b,
        c,
        flags,
        bias_a,
        bias_b,
        f16,
    } = product;
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
    let kernel = if f16 {
        Kernel::MatmulF16
    } else {
        Kernel::Matmul
    };
    let buffers = [
        ("p", &uniform),
        ("a", a.buffer),
        ("b", b.buffer),
        ("c", c.buffer),
        ("bias_a", bias_a),
        ("bias_b", bias_b),
    ];
    let grid = (groups(n, MATMUL_TILE_COLS), groups(m, MATMUL_TILE_ROWS), 1);
    Call::new(ctx, kernel, &buffers, grid)
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

/// out (n) = the column sums of a (m, n) (shaders/column_sum.wgsl).
pub fn column_sum(
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
    let buffers = [("p", &uniform), ("a", a), ("out", out)];
    Call::new(ctx, Kernel::ColumnSum, &buffers, (groups(n, 64), 1, 1))
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

/// out = a * mask over `len` values (shaders/mask.wgsl), on a 2-D grid so that `len` may pass
/// the workgroups one dimension allows.
pub fn mask(
    ctx: &GpuContext,
    a: &wgpu::Buffer,
    mask: &wgpu::Buffer,
    out: &wgpu::Buffer,
    len: usize,
) -> Result<Call> {
    let max_groups = ctx.limits.max_compute_workgroups_per_dimension;
    let x = groups(len, 256).clamp(1, max_groups);
    let row = x * 256;
    let params = MaskParams {
        len: len as u32,
        row,
        pad: [0; 2],
    };
    let uniform = ctx.uniform("mask params", bytemuck::bytes_of(&params))?;
    let buffers = [("p", &uniform), ("a", a), ("mask", mask), ("out", out)];
    Call::new(ctx, Kernel::Mask, &buffers, (x, groups(len, row), 1))
}

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

/// Where one direction of one layer runs: its shape and place in the layer output.
#[derive(Clone, Copy, Debug)]
pub struct StepShape {
    pub mode: Mode,
    pub seq: usize,
    pub batch: usize,
    pub hidden: usize,
    /// G * H
    pub gate_rows: usize,
    /// 0 forward, 1 reverse
    pub direction: usize,
    pub directions: usize,
}

/// The `Step` uniforms of every time step of one direction, `STEP_UNIFORM_STRIDE` apart (a
/// dynamic offset picks one). States are time-indexed: the forward direction reads slot t and
/// writes t+1, the reverse one reads t+1 and writes t.
pub fn step_uniforms(ctx: &GpuContext, shape: StepShape) -> Result<wgpu::Buffer> {
    let reverse = shape.direction == 1;
    let mut flags = match shape.mode {
        Mode::RnnRelu => STEP_RELU,
        Mode::Gru => STEP_ADD_DIRECT,
        Mode::RnnTanh | Mode::Lstm => 0,
    };
    if reverse {
        flags |= STEP_REVERSE;
    }
    let stride = STEP_UNIFORM_STRIDE as usize;
    let mut bytes = vec![0u8; shape.seq * stride];
    for t in 0..shape.seq {
        let (prev_slot, next_slot) = if reverse { (t + 1, t) } else { (t, t + 1) };
        let step = StepParams {
            batch: shape.batch as u32,
            hidden: shape.hidden as u32,
            t: t as u32,
            prev_slot: prev_slot as u32,
            next_slot: next_slot as u32,
            out_col: (shape.direction * shape.hidden) as u32,
            out_width: (shape.directions * shape.hidden) as u32,
            flags,
            gate_rows: shape.gate_rows as u32,
            seq_len: shape.seq as u32,
            pad: [0; 2],
        };
        bytes[t * stride..t * stride + std::mem::size_of::<StepParams>()]
            .copy_from_slice(bytemuck::bytes_of(&step));
    }
    ctx.uniform("steps", &bytes)
}

/// The recurrent kernels of one cell type, chosen once per plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellKernels {
    /// The per-step forward (shaders/step_tiled.wgsl over the cell's update)
    pub step_forward: Kernel,
    /// The persistent forward: one dispatch for all steps
    pub persistent_forward: Kernel,
    pub backward_gates: Kernel,
}

impl CellKernels {
    pub fn for_cell(mode: Mode, f16: bool) -> Self {
        let (forward, forward_f16, persistent, backward) = match mode {
            Mode::RnnTanh | Mode::RnnRelu => (
                Kernel::RnnForward,
                Kernel::RnnForwardF16,
                Kernel::RnnForwardPersistent,
                Kernel::RnnBackwardGates,
            ),
            Mode::Lstm => (
                Kernel::LstmForward,
                Kernel::LstmForwardF16,
                Kernel::LstmForwardPersistent,
                Kernel::LstmBackwardGates,
            ),
            Mode::Gru => (
                Kernel::GruForward,
                Kernel::GruForwardF16,
                Kernel::GruForwardPersistent,
                Kernel::GruBackwardGates,
            ),
        };
        CellKernels {
            step_forward: if f16 { forward_f16 } else { forward },
            persistent_forward: persistent,
            backward_gates: backward,
        }
    }
}
