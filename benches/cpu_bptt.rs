//! CPU forward and train step (forward + BPTT) at the standard shapes of torch_rnn_bench.py,
//! with throughput in FLOPs. `cargo bench --bench cpu_bptt`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array3;
use rnn_wgpu::bench::{BenchShape, cell_name};
use rnn_wgpu::{Mode, OutputGrads, Rnn, RnnConfig};

const SHAPES: [(Mode, usize, usize, usize, usize, usize); 5] = [
    (Mode::RnnTanh, 256, 256, 1, 32, 50),
    (Mode::Lstm, 256, 256, 1, 32, 50),
    (Mode::Gru, 256, 256, 1, 32, 50),
    (Mode::Lstm, 128, 128, 1, 16, 100),
    (Mode::Lstm, 256, 256, 2, 32, 50),
];

fn cpu_bptt(c: &mut Criterion) {
    let mut group = c.benchmark_group("cpu");
    group.sample_size(20);
    for (mode, input, hidden, layers, batch, seq) in SHAPES {
        let shape = BenchShape {
            mode,
            input,
            hidden,
            layers,
            batch,
            seq,
        };
        let id = format!(
            "{}_I{input}_H{hidden}_L{layers}_B{batch}_T{seq}",
            cell_name(mode)
        );
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
