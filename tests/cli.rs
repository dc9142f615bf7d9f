//! The command line: exit status, one-line errors, and what it prints.

mod common;

use std::process::Command;

use common::cli::{Sandbox, repo_arg, rnn_wgpu, text, train_small, write_text};

/// The public layer cases, by their paths in the checkout.
fn layer_cases() -> Vec<String> {
    [
        "rnn_tanh_small",
        "rnn_relu_small",
        "lstm_2layer",
        "gru_2layer",
        "lstm_bidir",
        "gru_bidir",
        "lstm_medium",
    ]
    .map(|name| repo_arg(&format!("tests/data/parity/{name}.safetensors")))
    .to_vec()
}

#[test]
fn parity_passes_every_public_layer_case() {
    let cases = layer_cases();
    let mut args = vec!["parity", "--backend", "cpu"];
    args.extend(cases.iter().map(String::as_str));
    let out = rnn_wgpu(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.contains("FAIL"));
    assert!(stdout.contains("PASS grad.weight_hh_l1_reverse"));
    assert!(
        stdout.trim_end().ends_with("7 of 7 cases passed"),
        "{stdout}"
    );
}

#[test]
fn parity_passes_the_train_cases() {
    let out = rnn_wgpu(&[
        "parity",
        &repo_arg("tests/data/parity/train_gru_charlm.safetensors"),
        &repo_arg("tests/data/parity/train_lstm_charlm.safetensors"),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("PASS final.head.weight"), "{stdout}");
    assert!(stdout.trim_end().ends_with("2 of 2 cases passed"));
}

#[test]
fn parity_on_a_file_that_is_not_a_case_fails_that_case() {
    let out = rnn_wgpu(&["parity", &layer_cases()[0], &repo_arg("README.md")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("README.md: FAIL: "), "{stdout}");
    assert!(stdout.contains("1 of 2 cases passed"));
}

#[test]
fn parity_on_gpu_passes_every_public_layer_case() {
    if common::gpu().is_none() {
        return;
    }
    let cases = layer_cases();
    let mut args = vec!["parity", "--backend", "gpu"];
    args.extend(cases.iter().map(String::as_str));
    let out = rnn_wgpu(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.trim_end().ends_with("7 of 7 cases passed"),
        "{stdout}"
    );
}

#[test]
fn parity_out_writes_the_computed_tensors() {
    let path =
        std::env::temp_dir().join(format!("rnn-wgpu-cli-{}.safetensors", std::process::id()));
    let out = rnn_wgpu(&["parity", &layer_cases()[2], "--out", path.to_str().unwrap()]);
    assert!(out.status.success());
    let file = rnn_wgpu::tensor_file::TensorFile::read(&path).expect("written");
    for key in [
        "output",
        "h_n",
        "c_n",
        "grad.input",
        "grad.h0",
        "grad.c0",
        "grad.weight_ih_l1",
    ] {
        assert!(file.contains(key), "{key} missing");
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn bad_input_prints_one_line_and_exits_nonzero() {
    let out = rnn_wgpu(&["bench", "--seq", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: --seq must be at least 1, got 0\n"
    );

    let out = rnn_wgpu(&["bench", "--hidden", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: hidden_size must be at least 1, got 0\n"
    );
}

#[test]
fn bench_json_has_the_peer_script_fields() {
    let out = rnn_wgpu(&[
        "bench", "--cell", "gru", "--input", "8", "--hidden", "16", "--layers", "2", "--batch",
        "2", "--seq", "5", "--runs", "3", "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object");
    for field in [
        "cell",
        "input",
        "hidden",
        "layers",
        "batch",
        "seq",
        "forward_ms",
        "train_ms",
        "runs",
    ] {
        assert!(v.get(field).is_some(), "{field} missing in {v}");
    }
    assert_eq!(v["cell"], "gru");
    assert!(v["train_ms"].as_f64().unwrap() > 0.0);
    assert!(v["train_gflops"].as_f64().unwrap() > 0.0);
}

#[test]
fn train_then_sample() {
    let dir = std::env::temp_dir().join(format!("rnn-wgpu-cli-train-{}", std::process::id()));
    let data = dir.join("text.txt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        &data,
        "to be or not to be, that is the question. ".repeat(40),
    )
    .unwrap();
    let out = rnn_wgpu(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--hidden",
        "16",
        "--layers",
        "1",
        "--seq",
        "8",
        "--batch",
        "4",
        "--steps",
        "5",
        "--backend",
        "cpu",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let last = stdout.trim_end().lines().last().unwrap();
    let val: f32 = last
        .strip_prefix("val_loss=")
        .expect("last line is val_loss=")
        .parse()
        .unwrap();
    assert!(val.is_finite() && val > 0.0);
    assert!(dir.join("checkpoint.safetensors").exists() && dir.join("loss.svg").exists());

    let checkpoint = dir.join("checkpoint.safetensors");
    let out = rnn_wgpu(&[
        "sample",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--prime",
        "to be",
        "--len",
        "20",
    ]);
    let sampled = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        sampled.starts_with("to be") && sampled.trim_end().chars().count() >= 20,
        "{sampled:?}"
    );

    let out = rnn_wgpu(&[
        "sample",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--prime",
        "ROMEO",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .starts_with("error: invalid configuration: character 'R' is not in the vocabulary"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_closed_pipe_ends_the_output_without_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let sandbox = Sandbox::new();
    let mut child = sandbox
        .command()
        .args([
            "parity",
            "--backend",
            "cpu",
            &repo_arg("tests/data/parity/lstm_medium.safetensors"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    // Close the reading end before the program writes.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("stderr");
    child.wait().expect("exits");
    assert!(!stderr.contains("panicked"), "{stderr}");
    sandbox.assert_untouched();
}

/// A regression checkpoint whose forecasts follow by hand: a ReLU RNN with one unit,
/// h_t = relu(v_t + 0.5 h_{t-1}) from zero at each 2-row window, head y = h, target w = 2 y + 10.
fn write_relu_regressor(path: &std::path::Path) {
    write_relu_regressor_trained_on(path, None);
}

/// `write_relu_regressor`, recording `trained_on` as the rows that trained it.
fn write_relu_regressor_trained_on(
    path: &std::path::Path,
    trained_on: Option<rnn_wgpu::data::TrainedOn>,
) {
    use ndarray::{Array1, Array2};
    use rnn_wgpu::nn::{Linear, ManyToOne};
    use rnn_wgpu::regression::{ColumnTransform, RegressionSpec, Regressor};
    use rnn_wgpu::{Mode, Rnn, RnnParams};
    let plain = |column: &str, mean: f64, std: f64| ColumnTransform {
        column: column.into(),
        log_change: false,
        mean,
        std,
    };
    let spec = RegressionSpec {
        mode: Mode::RnnRelu,
        hidden: 1,
        layers: 1,
        look_back: 2,
        inputs: vec![plain("v", 0.0, 1.0)],
        target: plain("w", 10.0, 2.0),
        trained_on,
    };
    let config = spec.rnn_config();
    let mut params = RnnParams::<f32>::zeros(&config);
    params.cells[0].weight_ih = Array2::from_elem((1, 1), 1.0);
    params.cells[0].weight_hh = Array2::from_elem((1, 1), 0.5);
    let head = Linear {
        weight: Array2::from_elem((1, 1), 1.0),
        bias: Array1::zeros(1),
    };
    let model = ManyToOne::new(Rnn::from_params(config, params).unwrap(), head).unwrap();
    Regressor { spec, model }.save(path).unwrap();
}

#[test]
fn run_forecasts_csv_rows_with_a_regression_checkpoint() {
    let dir = std::env::temp_dir().join(format!("rnn-wgpu-run-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("model.safetensors");
    write_relu_regressor(&checkpoint);
    // Columns in another order than the model's, plus one it does not read.
    let csv = dir.join("rows.csv");
    std::fs::write(&csv, "w,note,v\n1,a,1\n1,b,2\n16,c,-3\n10,d,4\n18,e,5\n").unwrap();
    let (ck, input) = (checkpoint.to_str().unwrap(), csv.to_str().unwrap());
    for backend in ["cpu", "gpu"] {
        if backend == "gpu" && common::gpu().is_none() {
            continue;
        }
        let out = rnn_wgpu(&[
            "run",
            "--checkpoint",
            ck,
            "--input",
            input,
            "--backend",
            backend,
        ]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines[0], "row,forecast_w");
        // After rows 1..4: y = relu(2 + 0.5), relu(-3 + 1), relu(4 + 0), relu(5 + 2) -> w = 2y + 10.
        let forecasts: Vec<(usize, f64)> = lines[1..5]
            .iter()
            .map(|l| {
                let (row, value) = l.split_once(',').unwrap();
                (row.parse().unwrap(), value.parse().unwrap())
            })
            .collect();
        for ((row, got), (want_row, want)) in
            forecasts
                .iter()
                .zip([(2, 15.0), (3, 10.0), (4, 18.0), (5, 24.0)])
        {
            assert_eq!(*row, want_row, "{backend}: {stdout}");
            assert!(
                (got - want).abs() < 1e-5,
                "{backend} row {row}: {got} vs {want}"
            );
        }
        // Scored on rows 2..4: errors 1, 0, 0; naive (last w) errors 15, 6, 8.
        let want = format!(
            "rmse={:.4} mae={:.4} over 3 forecasts (naive last value: rmse={:.4} mae={:.4})",
            (1.0f64 / 3.0).sqrt(),
            1.0 / 3.0,
            (325.0f64 / 3.0).sqrt(),
            29.0 / 3.0
        );
        assert_eq!(lines[5], want, "{backend}");
        // eval prints the metrics alone.
        let eval = rnn_wgpu(&[
            "eval",
            "--checkpoint",
            ck,
            "--data",
            input,
            "--backend",
            backend,
        ]);
        assert!(eval.status.success(), "{}", text(&eval.stderr));
        assert_eq!(text(&eval.stdout).trim_end(), want, "{backend}: eval");
    }

    // A CSV without a column the model reads: one line naming it, non-zero exit.
    std::fs::write(&csv, "v,x\n1,2\n").unwrap();
    let out = rnn_wgpu(&["run", "--checkpoint", ck, "--input", input]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no column 'w'"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A small training text in a fresh directory of its own.
fn train_dir(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("rnn-wgpu-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = write_text(&dir);
    (dir, data.to_str().unwrap().to_string())
}

#[test]
fn resume_takes_the_model_options_from_the_checkpoint() {
    let (dir, data) = train_dir("resume");
    let out_dir = dir.to_str().unwrap();
    let base = [
        "train",
        "--data",
        &data,
        "--backend",
        "cpu",
        "--out",
        out_dir,
    ];
    let first = [
        "--cell", "gru", "--hidden", "12", "--layers", "2", "--seq", "8", "--batch", "4", "--clip",
        "0.5", "--steps", "3",
    ];
    let out = rnn_wgpu(&[&base[..], &first[..]].concat());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("an untrained model's loss is near ln("),
        "{stdout}"
    );
    assert!(stdout.contains("\n3 steps in "), "{stdout}");

    // Rerunning without --resume would replace the checkpoint: refused, naming the choices.
    let out = rnn_wgpu(&[&base[..], &["--steps", "5"][..]].concat());
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "a checkpoint of an earlier run is here: --resume continues it, --overwrite starts over"
        ),
        "{stderr}"
    );

    // No model flag repeated: GRU H=12 L=2, seq 8, batch 4, clip 0.5 come from the checkpoint.
    let out = rnn_wgpu(&[&base[..], &["--resume", "--steps", "5"][..]].concat());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("training a gru char model (H=12, L=2"),
        "{stdout}"
    );
    assert!(stdout.contains("resuming from "), "{stdout}");
    assert!(!stdout.contains("untrained"), "{stdout}");
    assert!(
        stdout.contains("\n2 steps in ") && stdout.contains("steps 4 to 5 of the model"),
        "{stdout}"
    );

    // A flag given on resume must match the checkpoint.
    let out = rnn_wgpu(
        &[
            &base[..],
            &["--resume", "--steps", "6", "--hidden", "16"][..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("the checkpoint holds GRU H=12 L=2, this run asks for GRU H=16 L=2"),
        "{}",
        text(&out.stderr)
    );
    let out = rnn_wgpu(&[&base[..], &["--resume", "--steps", "6", "--clip", "1"][..]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("trained with clip=0.5, this run asks for clip=1"),
        "{}",
        text(&out.stderr)
    );

    // Already at --steps: says so instead of a NaN loss.
    let out = rnn_wgpu(&[&base[..], &["--resume", "--steps", "5"][..]].concat());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("no step in this run (the checkpoint is at step 5)")
            && !stdout.contains("NaN"),
        "{stdout}"
    );

    // --overwrite starts over.
    let out = rnn_wgpu(
        &[
            &base[..],
            &[
                "--overwrite",
                "--steps",
                "2",
                "--hidden",
                "8",
                "--seq",
                "8",
                "--batch",
                "4",
            ][..],
        ]
        .concat(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("lstm char model (H=8, L=2") && stdout.contains("\n2 steps in "),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn option_errors_name_the_option_and_the_rule() {
    for (flag, value, rule) in [
        ("--seq", "0", "must be at least 1"),
        ("--batch", "0", "must be at least 1"),
        ("--steps", "0", "must be at least 1"),
        ("--hidden", "0", "must be at least 1"),
        ("--lr", "-1", "must be a finite number above 0"),
        ("--lr", "NaN", "must be a finite number above 0"),
        ("--clip", "0", "must be a finite number above 0"),
        (
            "--seconds",
            "NaN",
            "must be a finite number of seconds above 0",
        ),
        ("--dropout", "1", "must be a probability in [0, 1)"),
    ] {
        let out = rnn_wgpu(&["train", "--backend", "cpu", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let stderr = text(&out.stderr);
        let first = stderr.lines().next().unwrap_or("");
        assert!(
            first.starts_with(&format!("error: invalid value '{value}' for '{flag} <"))
                && first.ends_with(&format!(": {rule}")),
            "{flag} {value}: {stderr}"
        );
    }
}

#[test]
fn dropout_on_one_layer_is_warned_of_as_pytorch_does() {
    let (dir, data) = train_dir("dropout-warning");
    let model = [
        "--hidden",
        "8",
        "--layers",
        "1",
        "--steps",
        "1",
        "--dropout",
        "0.3",
    ];
    let out = train_small(data.as_ref(), &dir, &model);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "warning: dropout adds dropout after all but the last recurrent layer, so dropout=0.3 does nothing with num_layers=1"
        ),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sample_and_run_without_a_checkpoint_say_where_one_comes_from() {
    for command in [
        &["sample"][..],
        &["run", "--input", &repo_arg("README.md")][..],
    ] {
        let out = rnn_wgpu(
            &[
                command,
                &["--checkpoint", "no/such/checkpoint.safetensors"][..],
            ]
            .concat(),
        );
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            text(&out.stderr),
            "error: no/such/checkpoint.safetensors: no checkpoint here: train one first (rnn-wgpu train), or name one with --checkpoint\n"
        );
    }
}

#[test]
fn run_skips_characters_outside_the_vocabulary_and_counts_them() {
    let (dir, data) = train_dir("run-unseen");
    let out = train_small(
        data.as_ref(),
        &dir,
        &["--hidden", "8", "--layers", "1", "--steps", "1"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let input = dir.join("input.txt");
    // Q and ! are not in the training text; "to be" is 5 known characters, then 4 more.
    std::fs::write(&input, "to beQ!Q not").unwrap();
    let checkpoint = dir.join("checkpoint.safetensors");
    let out = rnn_wgpu(&[
        "run",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stderr,
        "warning: skipped 3 characters that are not in the model's vocabulary: '!' x1, 'Q' x2\n"
    );
    // 9 characters read, so 8 next-character predictions scored.
    assert!(stdout.contains(" over 8 predictions"), "{stdout}");
    // eval: the same loss line alone, without the guesses.
    let eval = rnn_wgpu(&[
        "eval",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--data",
        input.to_str().unwrap(),
    ]);
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    let loss_line = stdout.lines().last().unwrap();
    assert_eq!(text(&eval.stdout).trim_end(), loss_line);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn parity_on_gpu_without_an_adapter_says_so_once() {
    let sandbox = Sandbox::new();
    let out = sandbox
        .command()
        .args(["parity", "--backend", "gpu"])
        .args(layer_cases())
        .env("RNN_WGPU_ADAPTER", "no-such-adapter-anywhere")
        .output()
        .unwrap();
    sandbox.assert_untouched();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "error: no case ran: GPU: no adapter's name contains 'no-such-adapter-anywhere' (RNN_WGPU_ADAPTER)\n"
    );
}

#[test]
fn inspect_lists_a_whole_models_stack_by_prefix_and_its_other_tensors() {
    let out = rnn_wgpu(&[
        "inspect",
        &repo_arg("tests/data/interop/whole_model_f16.safetensors"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "recurrent stacks (1):",
        "'encoder.rnn.': LSTM input=6 hidden=7 layers=2 bidirectional=false bias=true dtype=F16",
        "other tensors (3):",
        "encoder.embedding.weight [11, 6] F16 (132 bytes)",
        "head.weight [3, 7] F16 (42 bytes)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    let missing = rnn_wgpu(&["inspect", "no-such-file.safetensors"]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(text(&missing.stderr).lines().count(), 1);
}

/// `export` writes a checkpoint's stack and head under PyTorch's names: loaded back through
/// `interop` they give the checkpoint's outputs exactly; where Python with torch is present, the
/// PyTorch lines it prints load the file and compute the same outputs.
#[test]
fn export_round_trips_through_interop_and_pytorch() {
    use rnn_wgpu::checkpoint::Checkpoint;
    use rnn_wgpu::interop::load_state_dict;
    use rnn_wgpu::nn::Linear;
    use rnn_wgpu::tensor_file::TensorFile;

    let (dir, data) = train_dir("export");
    let model = [
        "--cell", "gru", "--hidden", "12", "--layers", "2", "--steps", "3",
    ];
    let out = train_small(data.as_ref(), &dir, &model);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let checkpoint = dir.join("checkpoint.safetensors");
    let exported = dir.join("exported.safetensors");
    let args = |extra: &[&str]| {
        let mut all = vec!["export", "--checkpoint", checkpoint.to_str().unwrap()];
        all.extend(["--out", exported.to_str().unwrap()]);
        all.extend(extra);
        rnn_wgpu(&all)
    };
    let out = args(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let loader = text(&out.stdout);
    assert!(loader.contains("torch.nn.GRU("), "{loader}");
    // A second export refuses to replace the file unless asked.
    assert_eq!(args(&[]).status.code(), Some(2));
    assert!(args(&["--overwrite"]).status.success());

    let ck = Checkpoint::load(&checkpoint).unwrap();
    let rnn = load_state_dict(&exported, rnn_wgpu::Mode::Gru, "rnn.", false).unwrap();
    let file = TensorFile::read(&exported).unwrap();
    let lookup = |name: &str| file.contains(name).then(|| file.f32(name)).transpose();
    let head = Linear::from_lookup("head", (12, ck.lm.head.weight.nrows()), lookup).unwrap();
    assert_eq!(rnn.params(), ck.lm.rnn.params());
    assert_eq!(head, ck.lm.head);
    let vocab = ck.lm.rnn.config().input_size;
    let x =
        ndarray::Array3::from_shape_fn((4, 1, vocab), |(t, _, i)| ((t * 7 + i) % 5) as f32 * 0.25);
    let ours = rnn.forward(x.view(), None, None).unwrap().output;
    assert_eq!(
        ours,
        ck.lm.rnn.forward(x.view(), None, None).unwrap().output
    );

    let has_torch = Command::new("python3")
        .args(["-c", "import torch, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        eprintln!(
            "skipped the PyTorch half of export_round_trips_through_interop_and_pytorch: no python3 with torch and safetensors here"
        );
        return;
    }
    let values: Vec<String> = x.iter().map(|v| v.to_string()).collect();
    let script = format!(
        "{loader}\nx = torch.tensor([{}]).reshape(4, 1, {vocab})\nout, _ = rnn(x)\nprint(' '.join(repr(v) for v in out.flatten().tolist()))\n",
        values.join(", ")
    );
    let run = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    let theirs: Vec<f32> = text(&run.stdout)
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((a - b).abs() < 1e-5, "output {i}: ours {a}, PyTorch {b}");
    }
    assert_eq!(theirs.len(), ours.len());
}

/// A run whose loss stops being finite ends with one error line naming the step, not a
/// report of NaN (on both backends).
#[test]
fn a_diverging_run_stops_with_an_error_naming_the_step() {
    let (dir, data) = train_dir("diverge");
    let mut backends = vec!["cpu"];
    if common::gpu().is_some() {
        backends.push("gpu");
    }
    let out_dir = dir.join("run");
    for backend in backends {
        let args = [
            "train",
            "--data",
            &data,
            "--seq",
            "8",
            "--batch",
            "2",
            "--hidden",
            "8",
            "--steps",
            "3",
            "--lr",
            "3e38",
            "--overwrite",
            "--backend",
            backend,
            "--out",
            out_dir.to_str().unwrap(),
        ];
        let out = rnn_wgpu(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{backend}: {}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        let last = stderr.trim_end().lines().last().unwrap_or("");
        assert!(
            last.starts_with("error: training diverged at step 2: the training loss is NaN"),
            "{backend}: {last}"
        );
        assert!(
            !text(&out.stdout).contains("NaN"),
            "{backend}: NaN reported"
        );
    }
}

#[test]
fn eval_scores_the_rows_after_the_training_rows_apart() {
    use rnn_wgpu::regression::RegressionSpec;
    let dir = std::env::temp_dir().join(format!("rnn-wgpu-eval-held-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("rows.csv");
    std::fs::write(&csv, "w,note,v\n1,a,1\n1,b,2\n16,c,-3\n10,d,4\n18,e,5\n").unwrap();
    // The first three rows trained it: (v, w) in the model's column order.
    let first_three = [vec![1.0, 1.0], vec![2.0, 1.0], vec![-3.0, 16.0]];
    let checkpoint = dir.join("model.safetensors");
    write_relu_regressor_trained_on(
        &checkpoint,
        Some(RegressionSpec::trained_rows(&first_three)),
    );
    let eval = |data: &std::path::Path| {
        rnn_wgpu(&[
            "eval",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ])
    };
    let out = eval(&csv);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    // All forecasts as before; rows 4 and 5 alone: errors 0, 0, naive (last w) errors 6, 8.
    let all = format!(
        "rmse={:.4} mae={:.4} over 3 forecasts (naive last value: rmse={:.4} mae={:.4})",
        (1.0f64 / 3.0).sqrt(),
        1.0 / 3.0,
        (325.0f64 / 3.0).sqrt(),
        29.0 / 3.0
    );
    let held = format!(
        "held out (the rows after the first 3): rmse=0.0000 mae=0.0000 over 2 forecasts (naive last value: rmse={:.4} mae=7.0000)",
        50.0f64.sqrt()
    );
    assert_eq!(stdout, format!("{all}\n{held}\n"));
    assert_eq!(
        stderr,
        "note: the first 3 rows of this file trained the model: the scores above count forecasts of them too\n"
    );
    // A file whose first rows differ from the training rows gets the plain scores alone.
    let other = dir.join("other.csv");
    std::fs::write(&other, "w,note,v\n2,a,1\n1,b,2\n16,c,-3\n10,d,4\n18,e,5\n").unwrap();
    let out = eval(&other);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_on_the_training_text_scores_the_validation_part_apart() {
    let (dir, data) = train_dir("eval-training-text");
    let out = train_small(
        data.as_ref(),
        &dir,
        &["--hidden", "8", "--layers", "1", "--steps", "2"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let checkpoint = dir.join("checkpoint.safetensors");
    let eval = |data: &str| {
        rnn_wgpu(&[
            "eval",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--data",
            data,
        ])
    };
    let out = eval(&data);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    // 1260 characters, the first 1134 (90%) trained it: predictions of characters 1134..=1259.
    assert_eq!(
        stderr,
        "note: the first 1134 characters of this text trained the model (its training split): the loss above counts them too\n"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].contains(" over 1259 predictions"), "{stdout}");
    assert!(
        lines[1].starts_with("held out (the characters after the first 1134): loss=")
            && lines[1].contains(" over 126 predictions"),
        "{stdout}"
    );
    // Another text of the same characters gets the plain loss alone.
    let other = dir.join("other.txt");
    std::fs::write(
        &other,
        "not to be or to be, that is the question. ".repeat(30),
    )
    .unwrap();
    let out = eval(other.to_str().unwrap());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    assert_eq!(text(&out.stdout).lines().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sample_on_a_regression_checkpoint_says_what_it_is_and_what_applies_it() {
    let dir = std::env::temp_dir().join(format!("rnn-wgpu-sample-kind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("model.safetensors");
    write_relu_regressor(&checkpoint);
    let out = rnn_wgpu(&["sample", "--checkpoint", checkpoint.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {}: a regression model's checkpoint (it forecasts CSV rows), not a character model's: `rnn-wgpu run --checkpoint FILE --input ROWS.csv` applies it, `rnn-wgpu eval` scores it\n",
            checkpoint.display()
        )
    );
    // A PyTorch state_dict is no checkpoint of ours: said so, with what lists it.
    let out = rnn_wgpu(&[
        "sample",
        "--checkpoint",
        &repo_arg("examples/data/lstm_state_dict.safetensors"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).ends_with(
            ": not an rnn-wgpu checkpoint (its metadata names no format): `rnn-wgpu inspect` lists what it holds\n"
        ),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
