//! Timing of forward and train steps, defined exactly as `torch_rnn_bench.py` defines them so the
//! figures sit side by side with PyTorch's:
//! - `forward_ms`: forward over the whole sequence from a zero state, no tape kept for training;
//! - `train_ms`: forward + backward from grad_output = ones, producing every parameter gradient
//!   (the input needs no gradient), as a training step for a first layer does.
//!
//! Both are medians over `runs` timed runs after `warmup` untimed ones.

use std::time::Instant;

use ndarray::Array3;

use crate::backend::Backend;
use crate::config::RnnConfig;
use crate::conventions::Mode;
use crate::engine::{StackInputs, StackUpstream};
use crate::error::Result;
use crate::model::{OutputGrads, Rnn};

/// The shapes of `torch_rnn_bench.py`'s default set (cell, I, H, L, B, T), for every benchmark.
pub const STANDARD_SHAPES: [BenchShape; 7] = [
    BenchShape {
        mode: Mode::RnnTanh,
        input: 256,
        hidden: 256,
        layers: 1,
        batch: 32,
        seq: 50,
    },
    BenchShape {
        mode: Mode::Lstm,
        input: 256,
        hidden: 256,
        layers: 1,
        batch: 32,
        seq: 50,
    },
    BenchShape {
        mode: Mode::Gru,
        input: 256,
        hidden: 256,
        layers: 1,
        batch: 32,
        seq: 50,
    },
    BenchShape {
        mode: Mode::Lstm,
        input: 128,
        hidden: 128,
        layers: 1,
        batch: 16,
        seq: 100,
    },
    BenchShape {
        mode: Mode::Lstm,
        input: 512,
        hidden: 512,
        layers: 1,
        batch: 64,
        seq: 25,
    },
    BenchShape {
        mode: Mode::Lstm,
        input: 1024,
        hidden: 1024,
        layers: 1,
        batch: 32,
        seq: 25,
    },
    BenchShape {
        mode: Mode::Lstm,
        input: 256,
        hidden: 256,
        layers: 2,
        batch: 32,
        seq: 50,
    },
];

impl BenchShape {
    /// A benchmark id such as `lstm_I256_H256_L1_B32_T50`.
    pub fn id(&self) -> String {
        format!(
            "{}_I{}_H{}_L{}_B{}_T{}",
            cell_name(self.mode),
            self.input,
            self.hidden,
            self.layers,
            self.batch,
            self.seq
        )
    }
}

/// One benchmark shape: cell, I, H, L, B, T.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchShape {
    pub mode: Mode,
    pub input: usize,
    pub hidden: usize,
    pub layers: usize,
    pub batch: usize,
    pub seq: usize,
}

/// "lstm I=256 H=256 L=1 B=32 T=50", as the bench command prints a shape.
impl std::fmt::Display for BenchShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} I={} H={} L={} B={} T={}",
            cell_name(self.mode),
            self.input,
            self.hidden,
            self.layers,
            self.batch,
            self.seq
        )
    }
}

impl BenchShape {
    fn config(&self) -> RnnConfig {
        RnnConfig::new(self.mode, self.input, self.hidden).layers(self.layers)
    }

    /// Multiply-add FLOPs (2 per MAC) of the forward pass: input and recurrent products.
    pub fn forward_flops(&self) -> f64 {
        let cfg = self.config();
        let steps = (self.seq * self.batch) as f64;
        (0..self.layers)
            .map(|l| {
                2.0 * steps
                    * cfg.gate_rows() as f64
                    * (cfg.layer_input_size(l) + self.hidden) as f64
            })
            .sum()
    }

    /// Forward plus backward FLOPs: the dh chain through W_hh, dW_hh, dW_ih, and d(input) for
    /// every layer but the first (whose input needs no gradient).
    pub fn train_flops(&self) -> f64 {
        let cfg = self.config();
        let steps = (self.seq * self.batch) as f64;
        let backward: f64 = (0..self.layers)
            .map(|l| {
                let input = cfg.layer_input_size(l) as f64;
                let dx = if l > 0 { input } else { 0.0 };
                2.0 * steps * cfg.gate_rows() as f64 * (2.0 * self.hidden as f64 + input + dx)
            })
            .sum();
        self.forward_flops() + backward
    }
}

/// Medians of one shape on one backend.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    pub shape: BenchShape,
    pub device: String,
    pub forward_ms: f64,
    pub train_ms: f64,
    pub runs: usize,
}

impl BenchResult {
    pub fn forward_gflops(&self) -> f64 {
        self.shape.forward_flops() / (self.forward_ms * 1e6)
    }

    pub fn train_gflops(&self) -> f64 {
        self.shape.train_flops() / (self.train_ms * 1e6)
    }

    /// One JSON object with `torch_rnn_bench.py`'s field names, plus GFLOP/s.
    pub fn to_json(&self) -> serde_json::Value {
        let s = &self.shape;
        let round3 = |v: f64| (v * 1e3).round() / 1e3;
        serde_json::json!({
            "peer": concat!("rnn-wgpu ", env!("CARGO_PKG_VERSION")),
            "device": self.device,
            "cell": cell_name(s.mode),
            "input": s.input, "hidden": s.hidden, "layers": s.layers, "batch": s.batch, "seq": s.seq,
            "forward_ms": round3(self.forward_ms),
            "train_ms": round3(self.train_ms),
            "runs": self.runs,
            "forward_gflops": round3(self.forward_gflops()),
            "train_gflops": round3(self.train_gflops()),
        })
    }
}

/// The bench script's cell names.
pub fn cell_name(mode: Mode) -> &'static str {
    match mode {
        Mode::RnnTanh | Mode::RnnRelu => "rnn",
        Mode::Lstm => "lstm",
        Mode::Gru => "gru",
    }
}

/// Times one shape on `backend`.
pub fn run(shape: BenchShape, backend: Backend, runs: usize, warmup: usize) -> Result<BenchResult> {
    match backend {
        Backend::Cpu => run_cpu(shape, runs, warmup),
        Backend::Gpu => run_gpu(shape, runs, warmup),
    }
}

/// Times one shape on the GPU: each call uploads the input, records one submission and waits
/// for the device (a device sync, as the PyTorch script synchronises CUDA); nothing is read back,
/// as PyTorch leaves its gradients on the device.
pub fn run_gpu(shape: BenchShape, runs: usize, warmup: usize) -> Result<BenchResult> {
    let model = Rnn::<f32>::new(shape.config(), 0)?.with_backend(Backend::Gpu)?;
    let gpu = model.gpu_model()?.expect("the model is on the GPU");
    let inputs = GpuInputs::new(&shape);
    let ones = Array3::<f32>::ones((shape.seq, shape.batch, shape.hidden));
    let train = || {
        let upstream = StackUpstream::of(
            ones.view(),
            // The initial states are zeros: zero gradients of the final ones.
            inputs.h0.view(),
            inputs.c0.as_ref().map(|c| c.view()),
        );
        inputs.run(&gpu, Some(upstream))
    };
    Ok(BenchResult {
        shape,
        device: format!(
            "{} ({:?})",
            gpu.context().info.name,
            gpu.context().info.backend
        ),
        forward_ms: median_ms(|| inputs.run(&gpu, None), runs, warmup)?,
        train_ms: median_ms(train, runs, warmup)?,
        runs,
    })
}

/// The input and zero initial states of a GPU benchmark at one shape.
struct GpuInputs {
    /// (T, B, I)
    input: Array3<f32>,
    /// (L, B, H)
    h0: Array3<f32>,
    /// (L, B, H), LSTM only
    c0: Option<Array3<f32>>,
}

impl GpuInputs {
    fn new(shape: &BenchShape) -> Self {
        let h0 = Array3::<f32>::zeros((shape.layers, shape.batch, shape.hidden));
        GpuInputs {
            input: bench_input(shape),
            c0: (shape.mode == Mode::Lstm).then(|| h0.clone()),
            h0,
        }
    }

    /// One forward (and BPTT with `upstream`) in one submission, waited for, nothing read back.
    fn run(
        &self,
        gpu: &crate::gpu::GpuModel,
        upstream: Option<StackUpstream<'_, f32>>,
    ) -> Result<()> {
        let inputs = StackInputs::dense(
            self.input.view(),
            self.h0.view(),
            self.c0.as_ref().map(|c| c.view()),
        );
        gpu.run(&inputs, upstream.map(|u| (u, false)), false, false)
            .map(drop)
    }
}

/// f16 inference beside f32 on the GPU: forward time, parameter and activation memory of each.
#[derive(Clone, Debug)]
pub struct F16Result {
    pub shape: BenchShape,
    pub device: String,
    /// False where the adapter lacks SHADER_F16 (the "f16" run was then f32 too).
    pub f16: bool,
    pub forward_ms_f32: f64,
    pub forward_ms_f16: f64,
    pub param_bytes_f32: u64,
    pub param_bytes_f16: u64,
    /// Bytes of the buffers one forward of the shape writes (`GpuModel::forward_bytes`).
    pub forward_bytes_f32: u64,
    pub forward_bytes_f16: u64,
    pub runs: usize,
}

/// Times the forward pass of `shape` in f32 and in f16, alternating per round so
/// that both see the same machine state.
pub fn run_f16(shape: BenchShape, runs: usize, warmup: usize) -> Result<F16Result> {
    let f32_model = Rnn::<f32>::new(shape.config(), 0)?.with_backend(Backend::Gpu)?;
    // A clone shares the device and uploads its own (f16) copy of the weights.
    let f16_model = f32_model.clone().with_f16()?;
    let (g32, g16) = (
        f32_model.gpu_model()?.expect("on the GPU"),
        f16_model.gpu_model()?.expect("on the GPU"),
    );
    let inputs = GpuInputs::new(&shape);
    let mut t32 = Vec::with_capacity(runs);
    let mut t16 = Vec::with_capacity(runs);
    for round in 0..warmup + runs {
        for (gpu, times) in [(&g32, &mut t32), (&g16, &mut t16)] {
            let start = Instant::now();
            inputs.run(gpu, None)?;
            if round >= warmup {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    Ok(F16Result {
        shape,
        device: g32.context().info.name.clone(),
        f16: g16.is_f16(),
        forward_ms_f32: median(t32),
        forward_ms_f16: median(t16),
        param_bytes_f32: g32.param_bytes(),
        param_bytes_f16: g16.param_bytes(),
        forward_bytes_f32: g32.forward_bytes(shape.seq, shape.batch)?,
        forward_bytes_f16: g16.forward_bytes(shape.seq, shape.batch)?,
        runs,
    })
}

/// Median latency in ms of one streaming step (`Stream::step`) of `shape.batch` streams: the
/// input of one time step in, the output out, the state carried (on the GPU it stays there).
pub fn stream_step_ms(
    shape: BenchShape,
    backend: Backend,
    runs: usize,
    warmup: usize,
) -> Result<f64> {
    let model = Rnn::<f32>::new(shape.config(), 0)?.with_backend(backend)?;
    let mut stream = model.stream(shape.batch)?;
    let x = ndarray::Array2::from_elem((shape.batch, shape.input), 0.1f32);
    median_ms(|| stream.step(x.view()).map(drop), runs, warmup)
}

fn bench_input(shape: &BenchShape) -> Array3<f32> {
    Array3::from_shape_fn((shape.seq, shape.batch, shape.input), |(t, b, i)| {
        ((t * 31 + b * 7 + i * 3) % 17) as f32 / 17.0 - 0.5
    })
}

/// Times one shape on the CPU path.
pub fn run_cpu(shape: BenchShape, runs: usize, warmup: usize) -> Result<BenchResult> {
    let model = Rnn::<f32>::new(shape.config(), 0)?;
    let input = bench_input(&shape);
    let ones = Array3::<f32>::ones((shape.seq, shape.batch, shape.hidden));
    let forward = || model.forward(input.view(), None, None).map(drop);
    let train = || {
        let (_, tape) = model.forward_train(input.view(), None, None)?;
        let upstream = OutputGrads {
            output: Some(ones.view()),
            ..Default::default()
        };
        model.backward(tape, upstream, false).map(drop)
    };
    Ok(BenchResult {
        shape,
        device: "cpu".into(),
        forward_ms: median_ms(forward, runs, warmup)?,
        train_ms: median_ms(train, runs, warmup)?,
        runs,
    })
}

/// Median wall time of `f` in milliseconds.
pub fn median_ms(mut f: impl FnMut() -> Result<()>, runs: usize, warmup: usize) -> Result<f64> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(times))
}

/// The median of timings in ms (the mean of the middle two for an even count); not empty.
fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    let mid = times.len() / 2;
    if times.len() % 2 == 1 {
        times[mid]
    } else {
        (times[mid - 1] + times[mid]) / 2.0
    }
}
