//! PyTorch's answers (tests/data/torch/gen_cases.py) for the options a PyTorch user reaches for:
//! cross-entropy with weight, ignore_index and reduction; SGD with weight decay and Nesterov (on
//! the host and on the device); a bidirectional many-to-one classifier over packed sequences;
//! a model with dropout in eval mode.

mod common;

use std::path::Path;

use ndarray::{Array2, ArrayD, Ix3};
use rnn_wgpu::interop::{LoadOptions, load_state_dict_with};
use rnn_wgpu::nn::{CrossEntropyOptions, Linear, ManyToOne, Reduction, cross_entropy_with};
use rnn_wgpu::optim::{Optimizer, Sgd};
use rnn_wgpu::tensor_file::TensorFile;
use rnn_wgpu::{Mode, OutputGrads, RnnBatch};

fn case(name: &str) -> TensorFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/torch")
        .join(name);
    TensorFile::read(&path).unwrap()
}

/// An I64 tensor of the case (ids, lengths, targets) as indices.
fn indices(file: &TensorFile, name: &str) -> Vec<usize> {
    file.i64(name)
        .unwrap()
        .iter()
        .map(|&v| v as usize)
        .collect()
}

fn values(a: &ArrayD<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * (1.0 + w.abs()),
            "{what}: index {i}: got {g}, want {w}"
        );
    }
}

#[test]
fn cross_entropy_options_equal_pytorchs() {
    let file = case("cross_entropy.safetensors");
    let logits: Array2<f32> = file.f32("logits").unwrap().into_dimensionality().unwrap();
    let targets: Vec<usize> = indices(&file, "targets");
    let weight = values(&file.f32("weight").unwrap());
    let ignore: usize = file.meta_parsed("ignore_index").unwrap();
    let cases = [
        ("mean", None, None, Reduction::Mean),
        ("sum", None, None, Reduction::Sum),
        ("none", None, None, Reduction::None),
        ("weighted_mean", Some(&weight), None, Reduction::Mean),
        ("ignore_mean", None, Some(ignore), Reduction::Mean),
        (
            "weighted_ignore_sum",
            Some(&weight),
            Some(ignore),
            Reduction::Sum,
        ),
        (
            "weighted_ignore_none",
            Some(&weight),
            Some(ignore),
            Reduction::None,
        ),
    ];
    for (name, weight, ignore_index, reduction) in cases {
        let options = CrossEntropyOptions {
            weight: weight.cloned(),
            ignore_index,
            reduction,
        };
        let out = cross_entropy_with(logits.view(), &targets, &options).unwrap();
        let want_loss = values(&file.f32(&format!("{name}.loss")).unwrap());
        assert_close(&format!("{name}: loss"), &out.loss, &want_loss, 1e-6);
        let want_grad = values(&file.f32(&format!("{name}.grad")).unwrap());
        assert_close(
            &format!("{name}: grad"),
            out.grad.as_slice().unwrap(),
            &want_grad,
            1e-6,
        );
    }
    let all_ignored = CrossEntropyOptions {
        ignore_index: Some(0),
        ..Default::default()
    };
    let err = cross_entropy_with(logits.view(), &[0; 7], &all_ignored).unwrap_err();
    assert!(err.to_string().contains("0 / 0"), "{err}");
}

fn sgd_cases() -> [(&'static str, Sgd); 5] {
    [
        ("momentum", Sgd::new(0.1, 0.9)),
        ("weight_decay", Sgd::new(0.1, 0.9).with_weight_decay(0.05)),
        ("nesterov", Sgd::new(0.1, 0.9).with_nesterov(true)),
        (
            "nesterov_weight_decay",
            Sgd::new(0.1, 0.9)
                .with_weight_decay(0.05)
                .with_nesterov(true),
        ),
        (
            "plain_weight_decay",
            Sgd::new(0.1, 0.0).with_weight_decay(0.05),
        ),
    ]
}

#[test]
fn sgd_weight_decay_and_nesterov_equal_pytorchs() {
    let file = case("sgd.safetensors");
    let grads: Vec<Vec<f32>> = (0..3)
        .map(|k| values(&file.f32(&format!("grad{k}")).unwrap()))
        .collect();
    for (name, mut sgd) in sgd_cases() {
        let mut p = values(&file.f32("p0").unwrap());
        for g in &grads {
            sgd.step(&mut [&mut p], &[g]);
        }
        let want = values(&file.f32(&format!("{name}.params")).unwrap());
        assert_close(&format!("sgd {name}"), &p, &want, 1e-6);
    }
}

/// The device's SGD step, with the same options, equals the host's over three steps.
#[test]
fn device_sgd_with_weight_decay_and_nesterov_equals_the_host() {
    let Some(ctx) = common::gpu() else { return };
    for (name, sgd) in sgd_cases() {
        let config = rnn_wgpu::RnnConfig::new(Mode::Gru, 3, 4);
        let mut cpu = rnn_wgpu::Rnn::<f32>::new(config, 1).unwrap();
        let mut gpu = cpu.clone().with_gpu(ctx.clone()).unwrap();
        let mut host = sgd.clone();
        let x = ndarray::Array3::from_shape_fn((4, 2, 3), |(t, b, i)| {
            ((t + 2 * b + 3 * i) as f32 * 0.3).sin()
        });
        let gy = ndarray::Array3::from_elem((4, 2, 4), 0.5f32);
        let upstream = OutputGrads {
            output: Some(gy.view()),
            ..Default::default()
        };
        for _ in 0..3 {
            let (_, tape) = cpu.forward_train(x.view(), None, None).unwrap();
            let mut grads = cpu.backward(tape, upstream, false).unwrap().params;
            let grad_slices: Vec<&[f32]> = grads.slices_mut().into_iter().map(|g| &*g).collect();
            host.step(&mut cpu.params_mut().slices_mut(), &grad_slices);
            let (_, tape) = gpu.forward_train(x.view(), None, None).unwrap();
            gpu.backward_on_device(tape, upstream).unwrap();
            gpu.sgd_step_on_device(&sgd, 1.0).unwrap();
        }
        gpu.sync_params().unwrap();
        for (k, (g, c)) in gpu
            .params()
            .slices()
            .iter()
            .zip(cpu.params().slices())
            .enumerate()
        {
            assert_close(&format!("device sgd {name}, tensor {k}"), g, c, 1e-5);
        }
    }
}

#[test]
fn a_bidirectional_packed_many_to_one_step_equals_pytorchs() {
    let file = case("many_to_one.safetensors");
    let x = file.f32("x").unwrap().into_dimensionality::<Ix3>().unwrap();
    let lengths: Vec<usize> = indices(&file, "lengths");
    let targets: Vec<usize> = indices(&file, "targets");
    let backends: Vec<Option<_>> = std::iter::once(None)
        .chain(common::gpu().map(Some))
        .collect();
    for ctx in backends {
        let load = |when: &str| {
            let options = LoadOptions {
                prefix: &format!("{when}.rnn."),
                ..Default::default()
            };
            let rnn = load_state_dict_with(&file, Mode::Gru, options).unwrap();
            let lookup = |name: &str| file.contains(name).then(|| file.f32(name)).transpose();
            let head = Linear::from_lookup(&format!("{when}.head"), (10, 3), lookup).unwrap();
            (rnn, head)
        };
        let (rnn, head) = load("before");
        let rnn = match &ctx {
            Some(ctx) => rnn.with_gpu(ctx.clone()).unwrap(),
            None => rnn,
        };
        let backend = rnn.backend();
        let mut model = ManyToOne::new(rnn, head).unwrap();
        let batch = RnnBatch::dense(x.view()).lengths(&lengths);
        let logits = model.predict_batch(batch).unwrap();
        let want = values(&file.f32("logits").unwrap());
        assert_close(
            &format!("{backend}: logits"),
            logits.as_slice().unwrap(),
            &want,
            1e-5,
        );
        let mut sgd = Sgd::new(0.5, 0.0);
        let loss = model
            .train_step_batch(
                batch,
                |p| rnn_wgpu::nn::cross_entropy(p, &targets),
                &mut sgd,
                None,
            )
            .unwrap();
        let want_loss = file.f32("loss").unwrap()[[0]];
        assert!(
            (loss - want_loss).abs() < 1e-5,
            "{backend}: loss {loss}, want {want_loss}"
        );
        let (want_rnn, want_head) = load("after");
        for (k, (g, w)) in model
            .rnn
            .params()
            .slices()
            .iter()
            .zip(want_rnn.params().slices())
            .enumerate()
        {
            assert_close(
                &format!("{backend}: stack tensor {k} after the step"),
                g,
                w,
                1e-5,
            );
        }
        let head_after = model.head.weight.as_slice().unwrap();
        assert_close(
            &format!("{backend}: head after the step"),
            head_after,
            want_head.weight.as_slice().unwrap(),
            1e-5,
        );
    }
}

#[test]
fn eval_mode_forwards_equal_pytorchs_model_eval() {
    let file = case("eval_mode.safetensors");
    let p: f32 = file.meta_parsed("dropout").unwrap();
    let options = LoadOptions {
        prefix: "lstm.",
        ..Default::default()
    };
    let mut rnn = load_state_dict_with(&file, Mode::Lstm, options)
        .unwrap()
        .with_dropout(p)
        .unwrap();
    let x = file.f32("x").unwrap().into_dimensionality::<Ix3>().unwrap();
    let want = values(&file.f32("output").unwrap());
    // In train mode (the default) a training forward drops units: not PyTorch's eval output.
    let (train_out, _) = rnn.forward_train(x.view(), None, None).unwrap();
    let diff = train_out
        .output
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff > 1e-3, "dropout should change a train-mode forward");
    rnn.set_training(false);
    let backends: Vec<Option<_>> = std::iter::once(None)
        .chain(common::gpu().map(Some))
        .collect();
    for ctx in backends {
        let model = match ctx {
            Some(ctx) => rnn.clone().with_gpu(ctx).unwrap(),
            None => rnn.clone(),
        };
        assert!(!model.is_training());
        let (out, tape) = model.forward_train(x.view(), None, None).unwrap();
        let b = model.backend();
        let c_n = out.c_n.clone().expect("an LSTM");
        for (name, got) in [("output", &out.output), ("h_n", &out.h_n), ("c_n", &c_n)] {
            let want = values(&file.f32(name).unwrap());
            assert_close(
                &format!("{b}: eval {name}"),
                got.as_slice().unwrap(),
                &want,
                1e-5,
            );
        }
        // The tape still serves a backward, as in PyTorch's eval mode.
        assert!(model.backward(tape, OutputGrads::default(), true).is_ok());
        let inference = model.forward(x.view(), None, None).unwrap();
        assert_close(
            &format!("{b}: inference"),
            inference.output.as_slice().unwrap(),
            &want,
            1e-5,
        );
    }
}

#[test]
fn gradient_helpers_zero_add_scale_and_norm() {
    let config = rnn_wgpu::RnnConfig::new(Mode::Lstm, 2, 3);
    let a = rnn_wgpu::RnnParams::<f32>::init(&config, 1);
    let b = rnn_wgpu::RnnParams::<f32>::init(&config, 2);
    let mut sum = a.clone();
    sum.add(&b).unwrap();
    sum.scale(2.0);
    for ((s, x), y) in sum.slices().iter().zip(a.slices()).zip(b.slices()) {
        let want: Vec<f32> = x.iter().zip(y).map(|(x, y)| 2.0 * (x + y)).collect();
        assert_close("2 (a + b)", s, &want, 1e-6);
    }
    let squares: f64 = sum
        .slices()
        .iter()
        .flat_map(|s| s.iter())
        .map(|&v| (v as f64).powi(2))
        .sum();
    assert!((sum.norm() - squares.sqrt()).abs() < 1e-9);
    sum.zero();
    assert_eq!(sum.norm(), 0.0);
    let other = rnn_wgpu::RnnParams::<f32>::init(&rnn_wgpu::RnnConfig::new(Mode::Gru, 2, 3), 1);
    assert!(sum.add(&other).is_err());
}

/// Embedding -> 2-layer bidirectional GRU over packed lengths -> head, with class weights: the
/// logits, the loss and every parameter after one SGD step (the embedding's padding row
/// untouched) equal PyTorch's, on both backends.
#[test]
fn a_text_classifier_over_token_ids_steps_as_pytorchs() {
    use rnn_wgpu::nn::{Embedding, TextClassifier};
    let file = case("text_classifier.safetensors");
    let ids: Array2<usize> = file
        .i64("ids")
        .unwrap()
        .mapv(|v| v as usize)
        .into_dimensionality()
        .unwrap();
    let lengths = indices(&file, "lengths");
    let targets = indices(&file, "targets");
    let options = CrossEntropyOptions {
        weight: Some(values(&file.f32("weight").unwrap())),
        ..Default::default()
    };
    let lookup = |name: &str| file.contains(name).then(|| file.f32(name)).transpose();
    let load = |when: &str| {
        let prefix = format!("{when}.rnn.");
        let options = LoadOptions {
            prefix: &prefix,
            batch_first: true,
            strict: false,
        };
        let rnn = load_state_dict_with(&file, Mode::Gru, options).unwrap();
        let head = Linear::from_lookup(&format!("{when}.head"), (10, 3), lookup).unwrap();
        let embedding = Embedding::from_lookup(&format!("{when}.embedding."), Some(0), lookup);
        (embedding.unwrap(), rnn, head)
    };
    let backends: Vec<Option<_>> = std::iter::once(None)
        .chain(common::gpu().map(Some))
        .collect();
    for ctx in backends {
        let (embedding, rnn, head) = load("before");
        let rnn = match &ctx {
            Some(ctx) => rnn.with_gpu(ctx.clone()).unwrap(),
            None => rnn,
        };
        let backend = rnn.backend();
        let model = ManyToOne::new(rnn, head).unwrap();
        let mut classifier = TextClassifier::new(embedding, model).unwrap();
        let logits = classifier.predict(ids.view(), &lengths).unwrap();
        let want = values(&file.f32("logits").unwrap());
        assert_close(
            &format!("{backend}: logits"),
            logits.as_slice().unwrap(),
            &want,
            1e-5,
        );
        let loss_of = |p: ndarray::ArrayView2<'_, f32>| {
            let out = cross_entropy_with(p, &targets, &options)?;
            Ok((out.loss[0], out.grad))
        };
        let mut sgd = Sgd::new(0.5, 0.0);
        let loss = classifier
            .train_step(ids.view(), &lengths, loss_of, &mut sgd, None)
            .unwrap();
        let want_loss = file.f32("loss").unwrap()[[0]];
        assert!(
            (loss - want_loss).abs() < 1e-5,
            "{backend}: loss {loss} vs {want_loss}"
        );
        let (embedding, rnn, head) = load("after");
        let got_embedding = classifier.embedding.weight.as_slice().unwrap();
        let what = format!("{backend}: embedding after the step");
        assert_close(
            &what,
            got_embedding,
            embedding.weight.as_slice().unwrap(),
            1e-5,
        );
        let stack = classifier.model.rnn.params().slices();
        for (k, (g, w)) in stack.iter().zip(rnn.params().slices()).enumerate() {
            assert_close(
                &format!("{backend}: stack tensor {k} after the step"),
                g,
                w,
                1e-5,
            );
        }
        let got_head = classifier.model.head.weight.as_slice().unwrap();
        assert_close(
            &format!("{backend}: head"),
            got_head,
            head.weight.as_slice().unwrap(),
            1e-5,
        );
    }
}
