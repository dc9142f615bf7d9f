//! PyTorch state dicts in and out: the parity cases' weights (PyTorch's own) loaded as a state
//! dict reproduce PyTorch's outputs, a PyTorch-saved batch_first bidirectional LSTM matches its
//! saved outputs, weights round-trip, and wrong names or shapes list what was expected.

mod common;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::Ix3;
use rnn_wgpu::interop::{load_state_dict, save_state_dict};
use rnn_wgpu::tensor_file::{TensorFile, write_f32};
use rnn_wgpu::{Mode, RnnError};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "rnn-wgpu-interop-{}-{name}.safetensors",
        std::process::id()
    ))
}

/// The parameter tensors of a parity case, written as `save_file(module.state_dict())` would.
fn state_dict_of_case(case: &str, prefix: &str, extra: Option<&str>) -> PathBuf {
    let file = TensorFile::read(&repo(case)).unwrap();
    let mut tensors = Vec::new();
    for name in file
        .names()
        .filter(|n| n.starts_with("weight_") || n.starts_with("bias_"))
    {
        tensors.push((format!("{prefix}{name}"), file.f32(name).unwrap()));
    }
    if let Some(extra) = extra {
        tensors.push((extra.to_string(), file.f32("h0").unwrap()));
    }
    let path = temp(&format!(
        "{}{}",
        Path::new(case).file_stem().unwrap().to_string_lossy(),
        extra.is_some()
    ));
    let views: Vec<_> = tensors.iter().map(|(n, t)| (n.clone(), t.view())).collect();
    write_f32(&path, &views, HashMap::new()).unwrap();
    path
}

fn max_err(a: &ndarray::Array3<f32>, b: &ndarray::Array3<f32>) -> f32 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn parity_case_weights_load_as_a_state_dict_and_reproduce_pytorch() {
    for (case, mode) in [
        ("tests/data/parity/lstm_bidir.safetensors", Mode::Lstm),
        ("tests/data/parity/gru_2layer.safetensors", Mode::Gru),
        (
            "tests/data/parity/rnn_relu_small.safetensors",
            Mode::RnnRelu,
        ),
    ] {
        let path = state_dict_of_case(case, "rnn.", None);
        let model = load_state_dict(&path, mode, "rnn.", false).unwrap();
        std::fs::remove_file(&path).unwrap();
        let file = TensorFile::read(&repo(case)).unwrap();
        let three = |n: &str| file.f32(n).unwrap().into_dimensionality::<Ix3>().unwrap();
        let c0 = file.contains("c0").then(|| three("c0"));
        let out = model
            .forward(
                three("input").view(),
                Some(three("h0").view()),
                c0.as_ref().map(|c| c.view()),
            )
            .unwrap();
        assert!(
            max_err(&out.output, &three("expected.output")) < 2e-4,
            "{case}"
        );
        assert!(max_err(&out.h_n, &three("expected.h_n")) < 2e-4, "{case}");
    }
}

#[test]
fn a_pytorch_saved_batch_first_bidirectional_lstm_matches_its_outputs() {
    let model = load_state_dict(
        &repo("examples/data/lstm_state_dict.safetensors"),
        Mode::Lstm,
        "",
        true,
    )
    .unwrap();
    let c = model.config();
    assert_eq!(
        (
            c.input_size,
            c.hidden_size,
            c.num_layers,
            c.bidirectional,
            c.bias
        ),
        (5, 8, 2, true, true)
    );
    let io = TensorFile::read(&repo("examples/data/lstm_io.safetensors")).unwrap();
    let three = |n: &str| io.f32(n).unwrap().into_dimensionality::<Ix3>().unwrap();
    let out = model.forward(three("input").view(), None, None).unwrap();
    assert!(max_err(&out.output, &three("output")) < 1e-5);
    assert!(max_err(&out.h_n, &three("h_n")) < 1e-5);
    assert!(max_err(out.c_n.as_ref().unwrap(), &three("c_n")) < 1e-5);
}

#[test]
fn weights_round_trip() {
    let model = load_state_dict(
        &repo("examples/data/lstm_state_dict.safetensors"),
        Mode::Lstm,
        "",
        false,
    )
    .unwrap();
    let path = temp("roundtrip");
    save_state_dict(&model, &path, "encoder.").unwrap();
    let back = load_state_dict(&path, Mode::Lstm, "encoder.", false).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back.params(), model.params());
}

#[test]
fn wrong_mode_extra_names_and_missing_names_are_errors_that_list_what_was_expected() {
    let lstm = repo("examples/data/lstm_state_dict.safetensors");
    let err = load_state_dict(&lstm, Mode::Gru, "", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "weight_hh_l0: expected shape (3 * H, H) for GRU, got [32, 8]"
    );

    let with_extra = state_dict_of_case(
        "tests/data/parity/gru_2layer.safetensors",
        "",
        Some("stray"),
    );
    let err = load_state_dict(&with_extra, Mode::Gru, "", false).unwrap_err();
    std::fs::remove_file(&with_extra).unwrap();
    assert!(matches!(err, RnnError::UnexpectedTensor { .. }), "{err}");
    assert!(
        err.to_string().starts_with(
            "unexpected tensor 'stray' (expected: weight_ih_l0 (18, 4), weight_hh_l0 (18, 6)"
        ),
        "{err}"
    );

    // A bidirectional dict missing one reverse tensor.
    let file = TensorFile::read(&lstm).unwrap();
    let kept: Vec<_> = file
        .names()
        .filter(|n| *n != "bias_hh_l1_reverse")
        .map(|n| (n.to_string(), file.f32(n).unwrap()))
        .collect();
    let views: Vec<_> = kept.iter().map(|(n, t)| (n.clone(), t.view())).collect();
    let path = temp("missing");
    write_f32(&path, &views, HashMap::new()).unwrap();
    let err = load_state_dict(&path, Mode::Lstm, "", false).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(
        err.to_string()
            .starts_with("missing tensor 'bias_hh_l1_reverse' (expected weight_ih_l0 (32, 5)"),
        "{err}"
    );

    let err = load_state_dict(&repo("README.md"), Mode::Lstm, "", false).unwrap_err();
    assert!(matches!(err, RnnError::File { .. }), "{err}");
}

/// A whole PyTorch model's state_dict (tests/data/interop/gen_whole_model.py): an embedding
/// with a padding row and a 2-layer batch-first LSTM under `encoder.`, a Linear head.
mod whole_model {
    use super::*;
    use ndarray::{Array2, Array3, ArrayView3, Ix2};
    use rnn_wgpu::interop::{LoadOptions, find_stacks, load_state_dict_with};
    use rnn_wgpu::nn::{Embedding, Linear};
    use rnn_wgpu::{Backend, OutputGrads, Rnn};

    const PREFIX: &str = "encoder.rnn.";

    struct Loaded {
        embedding: Embedding,
        rnn: Rnn<f32>,
        head: Linear,
    }

    fn load(dtype: &str) -> Loaded {
        let path = repo(&format!(
            "tests/data/interop/whole_model_{dtype}.safetensors"
        ));
        let file = TensorFile::read(&path).unwrap();
        let options = LoadOptions {
            prefix: PREFIX,
            batch_first: true,
            strict: false,
        };
        let rnn = load_state_dict_with(&file, Mode::Lstm, options).unwrap();
        let lookup = |name: &str| file.contains(name).then(|| file.f32(name)).transpose();
        let embedding = Embedding::from_lookup("encoder.embedding.", Some(0), lookup).unwrap();
        let head = Linear::from_lookup("head", (7, 3), lookup).unwrap();
        Loaded {
            embedding,
            rnn,
            head,
        }
    }

    fn expected(name: &str) -> ndarray::ArrayD<f32> {
        let file = TensorFile::read(&repo("tests/data/interop/whole_model_expected.safetensors"));
        file.unwrap().f32(name).unwrap()
    }

    fn assert_close(what: &str, got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 2e-5 * (1.0 + w.abs()),
                "{what}: index {i}: got {g}, want {w}"
            );
        }
    }

    /// Forward and backward of sum(logits * loss_weights) through embedding, stack and head;
    /// every result against PyTorch's for the weights as stored in `dtype`.
    fn check(model: &Loaded, dtype: &str, backend: &str) {
        let what = |name: &str| format!("{dtype} on {backend}: {name}");
        let ids_file =
            TensorFile::read(&repo("tests/data/interop/whole_model_expected.safetensors"));
        let ids = ids_file.unwrap().i64("ids").unwrap();
        let ids: Array2<usize> = ids
            .mapv(|v| v as usize)
            .into_dimensionality::<Ix2>()
            .unwrap();
        let x = model.embedding.forward(ids.view()).unwrap(); // (B, T, E): batch-first ids
        let (out, tape) = model.rnn.forward_train(x.view(), None, None).unwrap();
        let (batch, seq, hidden) = out.output.dim();
        let rows = out
            .output
            .to_shape((batch * seq, hidden))
            .unwrap()
            .to_owned();
        let logits = model.head.forward(rows.view()).unwrap();
        let flat = |a: &ndarray::ArrayD<f32>| a.iter().copied().collect::<Vec<_>>();
        let s = |a: ArrayView3<'_, f32>| a.iter().copied().collect::<Vec<_>>();
        assert_close(
            &what("logits"),
            logits.as_slice().unwrap(),
            &flat(&expected(&format!("{dtype}.logits"))),
        );
        assert_close(
            &what("h_n"),
            &s(out.h_n.view()),
            &flat(&expected(&format!("{dtype}.h_n"))),
        );
        assert_close(
            &what("c_n"),
            &s(out.c_n.as_ref().unwrap().view()),
            &flat(&expected(&format!("{dtype}.c_n"))),
        );
        let weights = expected("loss_weights");
        let grad_logits = Array2::from_shape_vec((batch * seq, 3), flat(&weights)).unwrap();
        let (head_grads, grad_rows) = model
            .head
            .backward(rows.view(), grad_logits.view())
            .unwrap();
        let grad_output: Array3<f32> = grad_rows
            .into_shape_with_order((batch, seq, hidden))
            .unwrap();
        let upstream = OutputGrads {
            output: Some(grad_output.view()),
            ..Default::default()
        };
        let grads = model.rnn.backward(tape, upstream, true).unwrap();
        let grad_x = grads.input.unwrap();
        let grad_embedding = model.embedding.backward(ids.view(), grad_x.view()).unwrap();
        assert_close(
            &what("grad head.weight"),
            head_grads.weight.as_slice().unwrap(),
            &flat(&expected(&format!("{dtype}.grad_head_weight"))),
        );
        assert_close(
            &what("grad embedding"),
            grad_embedding.as_slice().unwrap(),
            &flat(&expected(&format!("{dtype}.grad_embedding"))),
        );
        assert!(
            grad_embedding.row(0).iter().all(|&g| g == 0.0),
            "the padding row has no gradient"
        );
    }

    #[test]
    fn a_whole_model_state_dict_in_f32_f16_and_bf16_loads_by_prefix_and_reproduces_pytorch() {
        for dtype in ["f32", "f16", "bf16"] {
            let model = load(dtype);
            check(&model, dtype, "cpu");
            if let Some(ctx) = crate::common::gpu() {
                let on_gpu = Loaded {
                    rnn: model.rnn.clone().with_gpu(ctx).unwrap(),
                    ..model
                };
                assert_eq!(on_gpu.rnn.backend(), Backend::Gpu);
                check(&on_gpu, dtype, "gpu");
            }
        }
    }

    #[test]
    fn strict_loading_refuses_the_other_layers_tensors_and_the_stack_is_found_by_prefix() {
        let path = repo("tests/data/interop/whole_model_f32.safetensors");
        let file = TensorFile::read(&path).unwrap();
        let strict = LoadOptions {
            prefix: PREFIX,
            batch_first: true,
            strict: true,
        };
        let err = load_state_dict_with(&file, Mode::Lstm, strict).unwrap_err();
        assert!(matches!(err, RnnError::UnexpectedTensor { .. }), "{err}");
        let stacks = find_stacks(&file);
        assert_eq!(stacks.len(), 1);
        let stack = &stacks[0];
        assert_eq!(
            (
                stack.prefix.as_str(),
                stack.mode,
                stack.input_size,
                stack.hidden_size
            ),
            (PREFIX, Some(Mode::Lstm), 6, 7)
        );
        assert_eq!(
            (stack.num_layers, stack.bidirectional, stack.bias),
            (2, false, true)
        );
    }

    /// The loaded layers saved back as a whole state_dict give PyTorch's own file: the same
    /// names, shapes and values.
    #[test]
    fn a_whole_model_saved_back_has_pytorchs_names_and_values() {
        use rnn_wgpu::interop::StateDict;
        let model = load("f32");
        let path = temp("whole-model-saved");
        StateDict::default()
            .embedding("encoder.embedding.", &model.embedding)
            .rnn(PREFIX, &model.rnn)
            .linear("head.", &model.head)
            .save(&path)
            .unwrap();
        let ours = TensorFile::read(&path).unwrap();
        let theirs =
            TensorFile::read(&repo("tests/data/interop/whole_model_f32.safetensors")).unwrap();
        let mut names: Vec<&str> = ours.names().collect();
        let mut want: Vec<&str> = theirs.names().collect();
        names.sort_unstable();
        want.sort_unstable();
        assert_eq!(names, want);
        for name in names {
            assert_eq!(ours.f32(name).unwrap(), theirs.f32(name).unwrap(), "{name}");
        }
        let twice = StateDict::default()
            .linear("head.", &model.head)
            .linear("head.", &model.head);
        let err = twice.save(&path).unwrap_err();
        assert!(
            err.to_string().contains("two tensors named 'head."),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    /// An LSTM with projections is listed with its proj_size and refused on load by name.
    #[test]
    fn an_lstm_with_projections_is_found_and_refused_clearly() {
        let file = TensorFile::read(&repo("tests/data/interop/lstm_proj.safetensors")).unwrap();
        let stacks = find_stacks(&file);
        assert_eq!(stacks.len(), 1);
        assert_eq!(
            (stacks[0].mode, stacks[0].hidden_size, stacks[0].proj_size),
            (Some(Mode::Lstm), 5, 2)
        );
        let err = load_state_dict_with(&file, Mode::Lstm, LoadOptions::default()).unwrap_err();
        assert!(matches!(err, RnnError::Unsupported(_)), "{err}");
        assert!(err.to_string().contains("proj_size"), "{err}");
    }
}
