//! Hostile inputs, second round (issue 31): output paths that are not regular files, values
//! that are finite but overflow, error lines that would echo a whole file, and inputs with
//! nothing to evaluate. Each case: one `error:` line and exit 2, or a clean result; nothing
//! destroyed, no panic.

mod common;

use std::path::Path;

use common::cli::{
    assert_refused, char_checkpoint, repo_arg, rnn_wgpu, scratch, text, train_small, write_text,
};
use common::files::{edit_f32, is_fifo, mkfifo};

#[test]
fn outputs_replace_only_regular_files() {
    let dir = scratch("hostile-outputs");
    let case = repo_arg("tests/data/parity/rnn_tanh_small.safetensors");
    // A FIFO, a directory and a link to a file are each left as they are.
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let out = rnn_wgpu(&["parity", &case, "--out", fifo.to_str().unwrap()]);
    assert_refused(
        &out,
        "a FIFO is there, not a regular file: refusing to replace it",
    );
    assert!(is_fifo(&fifo));
    let folder = dir.join("folder");
    std::fs::create_dir(&folder).unwrap();
    let out = rnn_wgpu(&["parity", &case, "--out", folder.to_str().unwrap()]);
    assert_refused(&out, "a directory is there");
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = rnn_wgpu(&["parity", &case, "--out", link.to_str().unwrap()]);
    assert_refused(&out, "a symbolic link is there");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());

    // export --overwrite onto a FIFO.
    let ck = char_checkpoint(&dir.join("char"));
    let out = rnn_wgpu(&[
        "export",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--out",
        fifo.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_refused(&out, "a FIFO is there");
    assert!(is_fifo(&fifo));

    // train's lock file planted as a link: its target is not overwritten with a process id.
    let run = dir.join("run");
    std::fs::create_dir(&run).unwrap();
    std::os::unix::fs::symlink(&victim, run.join(".rnn-wgpu.lock")).unwrap();
    let out = train_small(
        &write_text(&dir),
        &run,
        &["--hidden", "4", "--layers", "1", "--steps", "1"],
    );
    assert_refused(
        &out,
        "cannot write its lock file .rnn-wgpu.lock: a symbolic link is there: refusing to write through it",
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    // A regular file is still replaced as before.
    let plain = dir.join("plain.safetensors");
    std::fs::write(&plain, "old").unwrap();
    let out = rnn_wgpu(&["parity", &case, "--out", plain.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(rnn_wgpu::tensor_file::TensorFile::read(&plain).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn finite_weights_that_overflow_are_an_error_when_sampling() {
    let dir = scratch("hostile-overflow");
    let ck = char_checkpoint(&dir);
    // 3e38 passes the finiteness check on load. Gate biases of 3e38 saturate every gate of
    // the last layer, so each h is tanh(c) > 0, and a head weight of 3e38 on six such units
    // overflows every logit to +inf: no distribution to sample from.
    let bad = dir.join("bad.safetensors");
    let saturated = dir.join("saturated.safetensors");
    edit_f32(&ck, &saturated, "bias_ih_l1", |b| b.fill(3e38));
    edit_f32(&saturated, &bad, "head.weight", |w| w.fill(3e38));
    let out = rnn_wgpu(&[
        "sample",
        "--checkpoint",
        bad.to_str().unwrap(),
        "--prime",
        "to",
        "--len",
        "5",
    ]);
    assert_refused(
        &out,
        "the logits of sampled character 1 has a non-finite value (inf) at [0]",
    );
    assert!(text(&out.stderr).contains("the model's weights overflow f32 arithmetic"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn csv_values_past_the_squares_f64_holds_are_refused_naming_the_line() {
    use rnn_wgpu::regression::{ColumnTransform, RegressionSpec, Regressor};
    let dir = scratch("hostile-csv");
    let spec = RegressionSpec {
        mode: rnn_wgpu::Mode::Gru,
        hidden: 3,
        layers: 1,
        look_back: 2,
        inputs: vec![ColumnTransform {
            column: "v".into(),
            log_change: false,
            mean: 0.0,
            std: 1.0,
        }],
        target: ColumnTransform {
            column: "v".into(),
            log_change: false,
            mean: 0.0,
            std: 1.0,
        },
        trained_on: None,
    };
    let checkpoint = dir.join("model.safetensors");
    Regressor::new(spec, 0).unwrap().save(&checkpoint).unwrap();
    let ck = checkpoint.to_str().unwrap();
    let eval =
        |csv: &Path| rnn_wgpu(&["eval", "--checkpoint", ck, "--data", csv.to_str().unwrap()]);
    // 1e308 printed rmse=inf with exit 0.
    let csv = dir.join("huge.csv");
    std::fs::write(&csv, "v\n1\n2\n1e308\n4\n").unwrap();
    assert_refused(
        &eval(&csv),
        "line 4, column 'v': 1e308 is beyond +-1e150, past which squared errors overflow f64",
    );
    // Only a header: there is nothing to score (printed nothing, exit 0).
    std::fs::write(&csv, "v\n").unwrap();
    assert_refused(
        &eval(&csv),
        "no forecast to score: a look-back window of 2 rows needs at least 3 data rows",
    );
    // An unterminated quote made the rest of the file one field, echoed whole.
    let mut body = String::from("v\n1\n2\n\"");
    body.push_str(&"x".repeat(1_000_000));
    std::fs::write(&csv, body).unwrap();
    assert_refused(&eval(&csv), "line 4, column 'v': not a finite number: \"");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_text_with_nothing_to_predict_is_an_error() {
    let dir = scratch("hostile-one-char");
    let ck = char_checkpoint(&dir);
    let one = dir.join("one.txt");
    std::fs::write(&one, "t").unwrap();
    let out = rnn_wgpu(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data",
        one.to_str().unwrap(),
    ]);
    assert_refused(
        &out,
        "one known character: nothing to predict (a next-character loss needs two)",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctrl_c_during_train_writes_a_checkpoint_that_sample_loads() {
    use std::io::BufRead;
    use std::process::Stdio;
    let dir = scratch("hostile-sigint");
    let data = write_text(&dir);
    let out_dir = dir.join("run");
    let sandbox = common::cli::Sandbox::new();
    // No periodic checkpoint before the signal: only the interruption writes one.
    let mut child = sandbox
        .command()
        .args(["train", "--backend", "cpu", "--seq", "8", "--batch", "2"])
        .args(["--hidden", "8", "--layers", "1", "--seconds", "120"])
        .args(["--checkpoint-every", "1000000"])
        .args(["--data", data.to_str().unwrap()])
        .args(["--out", out_dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The handler is installed before the first line; a moment of training after it.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("an untrained model's loss") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "train ended early"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: signals a child this test started and has not yet waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let checkpoint = out_dir.join("checkpoint.safetensors");
    assert!(
        stderr.contains("stopping after this step to write a checkpoint")
            && stderr.contains("holds it (--resume continues)")
            && stderr.contains(&checkpoint.display().to_string()),
        "{stderr}"
    );
    let step: usize = stderr
        .split("interrupted after step ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .expect("the step in the message");
    assert!(step > 0, "{stderr}");
    let ck = rnn_wgpu::checkpoint::Checkpoint::load(&checkpoint).unwrap();
    assert_eq!(ck.step, step);
    let sampled = rnn_wgpu(&[
        "sample",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--prime",
        "to",
        "--len",
        "5",
    ]);
    assert!(sampled.status.success(), "{}", text(&sampled.stderr));
    sandbox.assert_untouched();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_diverging_run_is_an_error_and_the_best_model_stays() {
    let dir = scratch("hostile-diverge");
    let data = write_text(&dir);
    let run = dir.join("run");
    let model = ["--hidden", "6", "--layers", "2", "--steps", "3"];
    let out = train_small(&data, &run, &model);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let best = run.join("best.safetensors");
    let val_loss = stdout.trim_end().rsplit_once("val_loss=").unwrap().1;
    assert!(
        stdout.contains(&format!(
            "best model by validation loss: {} ({val_loss})",
            best.display()
        )),
        "{stdout}"
    );
    let kept = std::fs::read(&best).unwrap();
    let recorded: f32 = rnn_wgpu::tensor_file::TensorFile::read(&best)
        .unwrap()
        .meta("val_loss")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(format!("{recorded:.4}"), val_loss);
    // --lr 1e10 ended with val_loss=8e10 (an untrained model's is ln 15 = 2.708) and exit 0.
    let out = train_small(&data, &run, &["--resume", "--steps", "9", "--lr", "1e10"]);
    assert_refused(&out, "training diverged by step 9: the validation loss ");
    assert!(
        text(&out.stderr).contains(&format!(
            "is far above an untrained model's 2.708 (a smaller learning rate may help); {} keeps the best model so far (validation loss {val_loss})",
            best.display()
        )),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&best).unwrap(),
        kept,
        "the best model is kept"
    );
    let sampled = rnn_wgpu(&[
        "sample",
        "--checkpoint",
        best.to_str().unwrap(),
        "--len",
        "5",
        "--prime",
        "to",
    ]);
    assert!(sampled.status.success(), "{}", text(&sampled.stderr));
    // Starting over removes the replaced run's best model: it is no yardstick for the new one.
    let out = train_small(
        &data,
        &run,
        &[
            "--overwrite",
            "--hidden",
            "4",
            "--layers",
            "1",
            "--steps",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(std::fs::read(&best).unwrap(), kept);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn finite_weights_that_overflow_make_a_forward_an_error_on_both_backends() {
    use ndarray::Array3;
    use rnn_wgpu::{Mode, Rnn, RnnConfig};
    // 3e38 in every W_ih entry of a ReLU RNN: the pre-activations of an input of ones sum to
    // inf, and relu(inf) = inf. Loaded from a file these pass the finiteness check; the
    // forward returned inf as a result.
    let config = RnnConfig::new(Mode::RnnRelu, 4, 3);
    let mut model = Rnn::<f32>::new(config, 0).unwrap();
    model.params_mut().cells[0].weight_ih.fill(3e38);
    let x = Array3::from_elem((2, 1, 4), 1.0f32);
    let want = "output (the weights or inputs overflow f32 arithmetic) has a non-finite value (inf) at [0, 0, 0] (step 0, batch row 0, feature 0)";
    let err = model.forward(x.view(), None, None).unwrap_err();
    assert_eq!(err.to_string(), want);
    let Some(ctx) = common::gpu() else { return };
    let gpu = model.with_gpu(ctx).unwrap();
    assert_eq!(
        gpu.forward(x.view(), None, None).unwrap_err().to_string(),
        want
    );
}
