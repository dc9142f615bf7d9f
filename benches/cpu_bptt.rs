//! CPU forward and train step (forward + BPTT) at the standard shapes of torch_rnn_bench.py,
//! with throughput in FLOPs. `cargo bench --bench cpu_bptt`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array3;
use rnn_wgpu::bench::{BenchShape, STANDARD_SHAPES};
use rnn_wgpu::{OutputGrads, Rnn, RnnConfig};

fn cpu_bptt(c: &mut Criterion) {
    let mut group = c.benchmark_group("cpu");
    group.sample_size(20);
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
        let model = Rnn::<f32>::new(RnnConfig::new(mode, input, hidden).layers(layers), 0).unwrap();
        let x = Array3::from_elem((seq, batch, input), 0.1f32);
        let ones = Array3::<f32>::ones((seq, batch, hidden));

        group.throughput(Throughput::Elements(shape.forward_flops() as u64));
        group.bench_function(BenchmarkId::new("forward", &id), |b| {
            b.iter(|| model.forward(x.view(), None, None).unwrap())
        });
        group.throughput(Throughput::Elements(shape.train_flops() as u64));
        group.bench_function(BenchmarkId::new("train", &id), |b| {
            b.iter(|| {
                let (_, tape) = model.forward_train(x.view(), None, None).unwrap();
                let upstream = OutputGrads {
                    output: Some(ones.view()),
                    ..Default::default()
                };
                model.backward(tape, upstream, false).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, cpu_bptt);
criterion_main!(benches);
