//! GPU forward and train step (forward + BPTT, one submission each) at the standard shapes of
//! torch_rnn_bench.py, timed with a device sync after every step, throughput in FLOPs, the
//! adapter's name in the benchmark id. `cargo bench --bench gpu_bptt`
//!
//! On lavapipe (a CPU) every step at these shapes takes seconds: filter, e.g.
//! `cargo bench --bench gpu_bptt -- rnn_`.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array3;
use rnn_wgpu::bench::{BenchShape, STANDARD_SHAPES};
use rnn_wgpu::engine::{StackInputs, StackUpstream};
use rnn_wgpu::gpu::GpuContext;
use rnn_wgpu::{Mode, Rnn, RnnConfig};

fn gpu_bptt(c: &mut Criterion) {
    let ctx = match GpuContext::new() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("gpu_bptt skipped: {e}");
            return;
        }
    };
    let device: String = ctx
        .info
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(24)
        .collect();
    let mut group = c.benchmark_group(format!("gpu_{device}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    for shape in STANDARD_SHAPES {
        let BenchShape {
            mode,
            input,
            hidden,
            layers,
            batch,
            seq,
        } = shape;
        let id = shape.id();
        let model = Rnn::<f32>::new(RnnConfig::new(mode, input, hidden).layers(layers), 0)
            .unwrap()
            .with_gpu(ctx.clone())
            .unwrap();
        let gpu = model.gpu_model().unwrap().expect("on the GPU");
        let x = Array3::from_elem((seq, batch, input), 0.1f32);
        let h0 = Array3::<f32>::zeros((layers, batch, hidden));
        let c0 = (mode == Mode::Lstm).then(|| h0.clone());
        let ones = Array3::<f32>::ones((seq, batch, hidden));
        let timed = |iters: u64, train: bool| {
            let start = Instant::now();
            for _ in 0..iters {
                let upstream = train.then(|| {
                    let upstream = StackUpstream::of(
                        ones.view(),
                        // The initial states are zeros: zero gradients of the final ones.
                        h0.view(),
                        c0.as_ref().map(|c| c.view()),
                    );
                    (upstream, false)
                });
                // read_back = false: the call still waits for the device before it returns.
                let inputs = StackInputs::dense(x.view(), h0.view(), c0.as_ref().map(|c| c.view()));
                gpu.run(&inputs, upstream, false, false).unwrap();
            }
            start.elapsed()
        };
        group.throughput(Throughput::Elements(shape.forward_flops() as u64));
        group.bench_function(BenchmarkId::new("forward", &id), |b| {
            b.iter_custom(|n| timed(n, false))
        });
        group.throughput(Throughput::Elements(shape.train_flops() as u64));
        group.bench_function(BenchmarkId::new("train", &id), |b| {
            b.iter_custom(|n| timed(n, true))
        });
    }
    group.finish();
}

criterion_group!(benches, gpu_bptt);
criterion_main!(benches);
