//! Bad input gets a typed error that names the tensor and the shapes, never a panic.

mod common;

use std::path::PathBuf;

use ndarray::Array3;
use rnn_wgpu::parity::{Backend, run_case};
use rnn_wgpu::tensor_file::write_f32;
use rnn_wgpu::{Mode, OutputGrads, Rnn, RnnConfig, RnnError, RnnParams};

fn lstm() -> Rnn<f32> {
    Rnn::new(RnnConfig::new(Mode::Lstm, 4, 6).layers(2), 0).expect("valid")
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rnn-wgpu-test-{}-{name}", std::process::id()))
}

#[test]
fn wrong_input_width_names_input_and_both_shapes() {
    let x = Array3::<f32>::zeros((5, 3, 7));
    let err = lstm().forward(x.view(), None, None).unwrap_err();
    assert!(matches!(err, RnnError::Shape { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "input: expected shape (T, B, 4), got [5, 3, 7]"
    );
}

#[test]
fn batch_first_input_shape_is_reported_batch_first() {
    let model = Rnn::<f32>::new(RnnConfig::new(Mode::Gru, 4, 6).batch_first(true), 0).unwrap();
    let err = model
        .forward(Array3::zeros((2, 9, 5)).view(), None, None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input: expected shape (B, T, 4), got [2, 9, 5]"
    );
}

#[test]
fn wrong_state_shapes_name_the_state() {
    let x = Array3::<f32>::zeros((5, 3, 4));
    let h0 = Array3::<f32>::zeros((1, 3, 6));
    let err = lstm().forward(x.view(), Some(h0.view()), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "h0: expected shape (2, 3, 6), got [1, 3, 6]"
    );
    let c0 = Array3::<f32>::zeros((2, 4, 6));
    let err = lstm().forward(x.view(), None, Some(c0.view())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "c0: expected shape (2, 3, 6), got [2, 4, 6]"
    );
}

#[test]
fn cell_state_for_a_gru_is_refused() {
    let gru = Rnn::<f32>::new(RnnConfig::new(Mode::Gru, 4, 6), 0).unwrap();
    let x = Array3::<f32>::zeros((5, 3, 4));
    let c0 = Array3::<f32>::zeros((1, 3, 6));
    let err = gru.forward(x.view(), None, Some(c0.view())).unwrap_err();
    assert!(matches!(err, RnnError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("c0 is only for LSTM"));
}

#[test]
fn zero_sizes_are_refused() {
    let err = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, 4, 0), 0).unwrap_err();
    assert_eq!(err.to_string(), "hidden_size must be at least 1, got 0");
    let err = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, 4, 3).layers(0), 0).unwrap_err();
    assert_eq!(err.to_string(), "num_layers must be at least 1, got 0");
    let err = lstm()
        .forward(Array3::zeros((0, 3, 4)).view(), None, None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "sequence length of input must be at least 1, got 0"
    );
    let err = lstm()
        .forward(Array3::zeros((2, 0, 4)).view(), None, None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "batch size of input must be at least 1, got 0"
    );
}

#[test]
fn nan_in_input_or_state_is_refused_with_its_position() {
    let mut x = Array3::<f32>::zeros((5, 3, 4));
    x[[1, 2, 3]] = f32::NAN;
    let err = lstm().forward(x.view(), None, None).unwrap_err();
    assert!(
        matches!(&err, RnnError::NonFinite { index, .. } if index == &[1, 2, 3]),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "input has a non-finite value (NaN) at [1, 2, 3] (step 1, batch row 2, feature 3)"
    );
    // A batch_first model names the caller's (B, T, I) index.
    let mut x = Array3::<f32>::zeros((3, 5, 4));
    x[[2, 1, 0]] = f32::NEG_INFINITY;
    let model = Rnn::<f32>::new(RnnConfig::new(Mode::Gru, 4, 6).batch_first(true), 0).unwrap();
    let err = model.forward(x.view(), None, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input has a non-finite value (-inf) at [2, 1, 0] (batch row 2, step 1, feature 0)"
    );
    let x = Array3::<f32>::zeros((5, 3, 4));
    let mut h0 = Array3::<f32>::zeros((2, 3, 6));
    h0[[0, 0, 0]] = f32::INFINITY;
    let err = lstm().forward(x.view(), Some(h0.view()), None).unwrap_err();
    assert!(
        err.to_string().starts_with("h0 has a non-finite value"),
        "{err}"
    );
}

#[test]
fn wrong_upstream_gradient_shape_is_refused() {
    let model = lstm();
    let x = Array3::<f32>::zeros((5, 3, 4));
    let (_, tape) = model.forward_train(x.view(), None, None).unwrap();
    let gy = Array3::<f32>::zeros((5, 3, 7));
    let err = model
        .backward(
            tape,
            OutputGrads {
                output: Some(gy.view()),
                ..Default::default()
            },
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "grad_output: expected shape (5, 3, 6), got [5, 3, 7]"
    );
}

#[test]
fn unknown_mode_is_refused() {
    let err = "LSTMX".parse::<Mode>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown mode 'LSTMX' (expected RNN_TANH, RNN_RELU, LSTM or GRU)"
    );
}

#[test]
fn parameters_of_the_wrong_shape_are_refused() {
    let config = RnnConfig::new(Mode::Gru, 4, 6);
    let mut params = RnnParams::<f32>::zeros(&config);
    params.cells[0].weight_hh = ndarray::Array2::zeros((18, 5));
    let err = Rnn::from_params(config, params).unwrap_err();
    assert_eq!(
        err.to_string(),
        "weight_hh_l0: expected shape (18, 6), got [18, 5]"
    );
}

#[test]
fn unreadable_and_malformed_files_are_refused() {
    let missing = temp_path("does-not-exist.safetensors");
    let err = run_case(&missing, Backend::Cpu).unwrap_err();
    assert!(
        matches!(err, RnnError::File { .. }) && err.to_string().contains("cannot read"),
        "{err}"
    );

    let garbage = temp_path("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a tensor file").unwrap();
    let err = run_case(&garbage, Backend::Cpu).unwrap_err();
    assert!(
        err.to_string().contains("not a valid safetensors file"),
        "{err}"
    );
    std::fs::remove_file(&garbage).unwrap();
}

#[test]
fn a_case_missing_a_parameter_names_it() {
    let path = temp_path("missing-weight.safetensors");
    let x = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[2, 1, 3]));
    let meta = [
        ("format", "rnn-parity/1"),
        ("kind", "layer"),
        ("mode", "RNN_TANH"),
        ("input_size", "3"),
        ("hidden_size", "5"),
        ("num_layers", "1"),
        ("bidirectional", "false"),
        ("seq_len", "2"),
        ("batch", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    write_f32(&path, &[("input".to_string(), x.view())], meta).unwrap();
    let err = run_case(&path, Backend::Cpu).unwrap_err();
    assert_eq!(
        err.to_string(),
        "missing tensor 'weight_ih_l0' (expected (5, 3))"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn debug_of_a_model_describes_it_without_its_values() {
    let model = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, 65, 256).layers(2), 0).unwrap();
    let text = format!("{model:?}");
    assert!(text.len() < 400, "{} bytes: {text}", text.len());
    // 4 tensors per layer; 4H x (I + H + 2) and 4H x (H + H + 2) values.
    assert!(
        text.contains("parameters: \"857088 values in 8 tensors\""),
        "{text}"
    );
    assert!(text.contains("backend: \"cpu\""), "{text}");
}

#[test]
fn linear_refuses_zero_sizes_and_wrong_widths_instead_of_panicking() {
    use ndarray::{Array1, Array2};
    use rnn_wgpu::nn::Linear;
    // in_features 0 made the init bound 1/sqrt(0) = inf, and the draw panicked.
    assert_eq!(
        Linear::new(0, 3, 0).unwrap_err().to_string(),
        "Linear in_features must be at least 1, got 0"
    );
    assert_eq!(
        Linear::new(3, 0, 0).unwrap_err().to_string(),
        "Linear out_features must be at least 1, got 0"
    );
    let layer = Linear::new(4, 2, 0).unwrap();
    assert_eq!(
        layer
            .forward(Array2::zeros((3, 5)).view())
            .unwrap_err()
            .to_string(),
        "Linear input: expected shape (N, 4), got [3, 5]"
    );
    let x = Array2::zeros((3, 4));
    assert_eq!(
        layer
            .backward(x.view(), Array2::zeros((3, 7)).view())
            .unwrap_err()
            .to_string(),
        "Linear output gradient: expected shape (3, 2), got [3, 7]"
    );
    // Public fields replaced with a bias of the wrong length.
    let mut broken = layer.clone();
    broken.bias = Array1::zeros(5);
    assert_eq!(
        broken.forward(x.view()).unwrap_err().to_string(),
        "Linear bias: expected shape (2), one per weight row, got [5]"
    );
    assert_eq!(layer.forward(x.view()).unwrap().dim(), (3, 2));
}

#[test]
fn parameters_reshaped_through_params_mut_are_refused_at_the_next_use() {
    use ndarray::Array2;
    let x = Array3::<f32>::zeros((3, 2, 4));
    let refused = |model: &Rnn<f32>| {
        let forward = model.forward(x.view(), None, None).unwrap_err().to_string();
        let stream = model.stream(2).err().expect("refused").to_string();
        assert_eq!(forward, stream);
        forward
    };
    let mut model = lstm();
    model.params_mut().cells[1].weight_hh = Array2::zeros((24, 5));
    assert_eq!(
        refused(&model),
        "weight_hh_l1: expected shape (24, 6), got [24, 5]"
    );
    let mut model = lstm();
    model.params_mut().cells.pop();
    assert_eq!(
        refused(&model),
        "invalid configuration: parameters hold 4 tensors in 1 cells, the config needs 8 in 2"
    );
    // On the GPU too: before, the reshaped tensor was uploaded and gave garbage silently.
    let Some(ctx) = common::gpu() else { return };
    let mut model = lstm().with_gpu(ctx).unwrap();
    model.params_mut().cells[0].weight_ih = Array2::zeros((24, 3));
    assert_eq!(
        model.forward(x.view(), None, None).unwrap_err().to_string(),
        "weight_ih_l0: expected shape (24, 4), got [24, 3]"
    );
}

#[test]
fn a_tape_from_another_model_is_refused() {
    let x = Array3::<f32>::zeros((3, 2, 4));
    let other = Rnn::<f32>::new(RnnConfig::new(Mode::Lstm, 4, 6), 0).unwrap();
    let (out, tape) = other.forward_train(x.view(), None, None).unwrap();
    let grad = Array3::ones(out.output.dim());
    let grads = OutputGrads {
        output: Some(grad.view()),
        ..Default::default()
    };
    let err = lstm().backward(tape, grads, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: the tape comes from another model (LSTM I=4 H=6 L=1), not this one (LSTM I=4 H=6 L=2)"
    );
}
