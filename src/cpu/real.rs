//! The scalar types the CPU path runs in: f32 (the product) and f64 (gradient checks).

use std::fmt::{Debug, Display};

use ndarray::LinalgScalar;
use num_traits::Float;

use super::activations;
use super::stack::{StackGrads, StackOutput};
use crate::config::RnnConfig;
use crate::error::{Result, RnnError};
use crate::gpu::{GpuContext, GpuModel, GpuTape, RunInputs, Upstream};
use crate::params::RnnParams;

/// What a GPU run returns: outputs and gradients when read back, and the tape.
/// What a GPU run returns: outputs and gradients when read back, and the tape of a forward
/// without BPTT.
pub type GpuRun<T> = (
    Option<StackOutput<T>>,
    Option<StackGrads<T>>,
    Option<GpuTape>,
);

/// A float the CPU path computes in, with its vectorised activations.
pub trait Real: LinalgScalar + Float + Send + Sync + Debug + Display + Default + 'static {
    /// Name for messages and file dtypes.
    const NAME: &'static str;

    /// 1 / (1 + exp(-x)); inlined so that loops over it vectorise.
    fn sigmoid_of(x: Self) -> Self;
    /// tanh(x); inlined so that loops over it vectorise.
    fn tanh_of(x: Self) -> Self;

    /// A forward (and BPTT when `upstream` is given) on the GPU, which computes in f32 only.
    fn gpu_run(
        gpu: &GpuModel,
        inputs: RunInputs<'_, Self>,
        upstream: Option<(Upstream<'_, Self>, bool)>,
        read_back: bool,
    ) -> Result<GpuRun<Self>>;

    /// BPTT on the GPU through the forward that made `tape`.
    fn gpu_backward(
        gpu: &GpuModel,
        tape: GpuTape,
        upstream: Upstream<'_, Self>,
        need_input_grad: bool,
    ) -> Result<StackGrads<Self>>;

    /// Puts a model's parameters on the GPU.
    /// Puts a model's parameters on the GPU; `f16`: f16 weights and activations for inference.
    fn gpu_model(
        ctx: std::sync::Arc<GpuContext>,
        config: &RnnConfig,
        params: &RnnParams<Self>,
        f16: bool,
    ) -> Result<GpuModel>;

    /// Re-uploads host parameters to the GPU model.
    fn gpu_update(gpu: &GpuModel, params: &RnnParams<Self>) -> Result<()>;
}

impl Real for f32 {
    const NAME: &'static str = "f32";

    #[inline(always)]
    fn sigmoid_of(x: f32) -> f32 {
        activations::sigmoid_f32(x)
    }
    #[inline(always)]
    fn tanh_of(x: f32) -> f32 {
        activations::tanh_f32(x)
    }

    fn gpu_run(
        gpu: &GpuModel,
        inputs: RunInputs<'_, f32>,
        upstream: Option<(Upstream<'_, f32>, bool)>,
        read_back: bool,
    ) -> Result<GpuRun<f32>> {
        gpu.run(inputs, upstream, read_back)
    }

    fn gpu_backward(
        gpu: &GpuModel,
        tape: GpuTape,
        upstream: Upstream<'_, f32>,
        need_input_grad: bool,
    ) -> Result<StackGrads<f32>> {
        gpu.backward(tape, upstream, need_input_grad)
    }

    fn gpu_model(
        ctx: std::sync::Arc<GpuContext>,
        config: &RnnConfig,
        params: &RnnParams<f32>,
        f16: bool,
    ) -> Result<GpuModel> {
        GpuModel::new(ctx, config, params, f16)
    }

    fn gpu_update(gpu: &GpuModel, params: &RnnParams<f32>) -> Result<()> {
        gpu.update_params(params);
        Ok(())
    }
}

fn f64_on_gpu() -> RnnError {
    RnnError::Unsupported("f64 on the GPU (the kernels compute in f32)".into())
}

impl Real for f64 {
    const NAME: &'static str = "f64";

    // f64 serves gradient checks, where the exact libm functions matter more than speed.
    #[inline(always)]
    fn sigmoid_of(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }
    #[inline(always)]
    fn tanh_of(x: f64) -> f64 {
        x.tanh()
    }

    fn gpu_run(
        _: &GpuModel,
        _: RunInputs<'_, f64>,
        _: Option<(Upstream<'_, f64>, bool)>,
        _: bool,
    ) -> Result<GpuRun<f64>> {
        Err(f64_on_gpu())
    }

    fn gpu_backward(
        _: &GpuModel,
        _: GpuTape,
        _: Upstream<'_, f64>,
        _: bool,
    ) -> Result<StackGrads<f64>> {
        Err(f64_on_gpu())
    }

    fn gpu_model(
        _: std::sync::Arc<GpuContext>,
        _: &RnnConfig,
        _: &RnnParams<f64>,
        _: bool,
    ) -> Result<GpuModel> {
        Err(f64_on_gpu())
    }

    fn gpu_update(_: &GpuModel, _: &RnnParams<f64>) -> Result<()> {
        Err(f64_on_gpu())
    }
}
