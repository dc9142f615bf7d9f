//! Hostile files, absurd sizes and careless runs, one regression case each: sizes are refused
//! before anything is allocated, non-finite or inconsistent values are refused naming the
//! tensor, the parity harness cannot pass garbage, and runs do not lose work.

mod common;

use std::process::{Command, Output};

use common::cli::{
    Sandbox, assert_refused, char_checkpoint, repo, rnn_wgpu, scratch, text, train_small,
    write_text,
};
use common::files::{edit_f32, edit_header};
use serde_json::Value;

/// The same, under a memory limit (RLIMIT_AS) that a 1.5 GB allocation would break.
fn rnn_wgpu_in(memory: u64, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command();
    cmd.args(args);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: memory,
                rlim_max: memory,
            };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let out = cmd.output().expect("binary runs");
    sandbox.assert_untouched();
    out
}

const CASE: &str = "tests/data/parity/rnn_tanh_small.safetensors";
const TRAIN_CASE: &str = "tests/data/parity/train_gru_charlm.safetensors";

fn set_meta(header: &mut Value, key: &str, value: &str) {
    header["__metadata__"][key] = Value::from(value);
}

#[test]
fn sizes_in_a_file_are_checked_before_anything_is_allocated() {
    let dir = scratch("safety-sizes");
    let case = dir.join("case.safetensors");
    for (key, value, want) in [
        // 1.5 GB of parameters before the shape error, before the fix: here under 1 GB.
        (
            "hidden_size",
            "20000",
            "weight_ih_l0: expected shape (20000, 3)",
        ),
        ("hidden_size", "1000000000000", "would take"),
        ("num_layers", "100000000", "missing tensor 'weight_ih_l1'"),
        ("num_layers", "10000000000000", "would take"),
        ("input_size", "18446744073709551615", "a usize can count"),
        ("seq_len", "18446744073709551615", "input: expected shape"),
    ] {
        edit_header(&repo(CASE), &case, |h| set_meta(h, key, value));
        let out = rnn_wgpu_in(1 << 30, &["parity", case.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{key}={value}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains("FAIL: ") && stdout.contains(want),
            "{key}={value}: {stdout}"
        );
    }
    // A train case's seq_len of u64::MAX wrapped `seq + 1` to 0 and panicked.
    edit_header(&repo(TRAIN_CASE), &case, |h| {
        set_meta(h, "seq_len", "18446744073709551615")
    });
    let out = rnn_wgpu(&["parity", case.to_str().unwrap()]);
    assert!(
        text(&out.stdout).contains("tokens: expected shape"),
        "{}",
        text(&out.stdout)
    );
    // A zero-element tensor whose other dimension is u64::MAX.
    edit_header(&repo(CASE), &case, |h| {
        h["h0"]["shape"] = serde_json::json!([0, u64::MAX, 1]);
        h["h0"]["data_offsets"][1] = h["h0"]["data_offsets"][0].clone();
    });
    let out = rnn_wgpu(&["parity", case.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("FAIL: "),
        "{}",
        text(&out.stdout)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn absurd_sizes_on_the_command_line_are_refused_not_aborted() {
    for args in [
        &[
            "train",
            "--backend",
            "cpu",
            "--hidden",
            "100000",
            "--steps",
            "1",
        ][..],
        &["bench", "--hidden", "100000"][..],
        &["bench", "--hidden", "100000", "--stream"][..],
        &["bench", "--layers", "100000000"][..],
        &["bench", "--hidden", "100000", "--f16", "--backend", "gpu"][..],
    ] {
        let out = rnn_wgpu_in(4 << 30, args);
        assert_refused(&out, "would take");
    }
}

#[test]
fn the_parity_harness_fails_garbage() {
    let dir = scratch("safety-parity");
    let case = dir.join("case.safetensors");
    // Weights of +-3e38 make the sums inf - inf: an all-NaN output, which passed before.
    edit_f32(&repo(CASE), &case, "weight_ih_l0", |w| {
        for (i, v) in w.iter_mut().enumerate() {
            *v = if i % 2 == 0 { 3e38 } else { -3e38 };
        }
    });
    let out = rnn_wgpu(&["parity", case.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL output") && stdout.contains("NaN in the result"),
        "{stdout}"
    );
    // NaN in an expected tensor.
    edit_f32(&repo(CASE), &case, "expected.h_n", |v| v[0] = f32::NAN);
    let stdout = text(&rnn_wgpu(&["parity", case.to_str().unwrap()]).stdout);
    assert!(
        stdout.contains("FAIL h_n") && stdout.contains("NaN in the expected tensor"),
        "{stdout}"
    );
    // An expected tensor taken out, and one added that nothing computes.
    let bytes = std::fs::read(repo(CASE)).unwrap();
    let (header, _) = common::files::split(&bytes).unwrap();
    let names: Vec<String> = header.as_object().unwrap().keys().cloned().collect();
    assert!(names.iter().any(|n| n == "expected.output"));
    let file = rnn_wgpu::tensor_file::TensorFile::read(&repo(CASE)).unwrap();
    let mut tensors: Vec<(String, ndarray::ArrayD<f32>)> = file
        .names()
        .filter(|n| *n != "expected.output")
        .map(|n| (n.to_string(), file.f32(n).unwrap()))
        .collect();
    tensors.push(("expected.bogus".into(), ndarray::ArrayD::zeros(vec![2])));
    let views: Vec<_> = tensors.iter().map(|(n, t)| (n.clone(), t.view())).collect();
    rnn_wgpu::tensor_file::write_f32(&case, &views, file.metadata().clone()).unwrap();
    let out = rnn_wgpu(&["parity", case.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL output")
            && stdout.contains("missing: the case has no expected.output"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL bogus") && stdout.contains("unknown"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn parity_out_may_not_name_an_input_case() {
    let dir = scratch("safety-out");
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.result.safetensors"));
    std::fs::copy(repo(CASE), &a).unwrap();
    std::fs::copy(repo(CASE), &b).unwrap();
    let before = std::fs::read(&a).unwrap();
    let out = rnn_wgpu(&["parity", a.to_str().unwrap(), "--out", a.to_str().unwrap()]);
    assert_refused(&out, "--out would overwrite the case");
    assert_eq!(std::fs::read(&a).unwrap(), before);
    // With several cases, a's result (a.result.safetensors) is fine but b's would be b.result:
    // here b's own name, an input.
    let b_case = dir.join("b.safetensors");
    std::fs::copy(repo(CASE), &b_case).unwrap();
    let out = rnn_wgpu(&[
        "parity",
        b_case.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        dir.join("x.safetensors").to_str().unwrap(),
    ]);
    assert_refused(&out, "--out would overwrite the case");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn values_in_a_checkpoint_are_checked_on_load() {
    let dir = scratch("safety-values");
    let ck = char_checkpoint(&dir);
    let bad = dir.join("bad.safetensors");
    let bad_path = bad.to_str().unwrap();
    let sample = [
        "sample",
        "--checkpoint",
        bad_path,
        "--prime",
        "to",
        "--len",
        "5",
    ];
    // NaN weights: sample panicked, run printed loss=NaN, resume trained on NaN.
    edit_f32(&ck, &bad, "weight_hh_l1", |w| w[7] = f32::NAN);
    assert_refused(
        &rnn_wgpu(&sample),
        "weight_hh_l1 has a non-finite value (NaN) at [1, 1] (in a (24, 6) tensor)",
    );
    let text_file = dir.join("text.txt");
    let resume_dir = dir.join("resume");
    std::fs::create_dir_all(&resume_dir).unwrap();
    std::fs::copy(&bad, resume_dir.join("checkpoint.safetensors")).unwrap();
    let resume = [
        "train",
        "--resume",
        "--backend",
        "cpu",
        "--steps",
        "9",
        "--data",
        text_file.to_str().unwrap(),
        "--out",
        resume_dir.to_str().unwrap(),
    ];
    assert_refused(&rnn_wgpu(&resume), "weight_hh_l1 has a non-finite value");
    // The refused checkpoint is left as it was, not trained on and overwritten.
    assert_eq!(
        std::fs::read(resume_dir.join("checkpoint.safetensors")).unwrap(),
        std::fs::read(&bad).unwrap()
    );
    assert_refused(
        &rnn_wgpu(&[
            "run",
            "--checkpoint",
            bad_path,
            "--input",
            text_file.to_str().unwrap(),
        ]),
        "weight_hh_l1 has a non-finite value",
    );
    // Moments one element short were accepted on the CPU, which then updated element 0 only.
    let bytes = std::fs::read(&ck).unwrap();
    let (header, data) = common::files::split(&bytes).unwrap();
    let key = "optim.exp_avg.bias_hh_l0";
    let start = header[key]["data_offsets"][0].as_u64().unwrap() as usize;
    let end = header[key]["data_offsets"][1].as_u64().unwrap() as usize;
    let file = rnn_wgpu::tensor_file::TensorFile::read(&ck).unwrap();
    let mut tensors: Vec<(String, ndarray::ArrayD<f32>)> = file
        .names()
        .map(|n| (n.to_string(), file.f32(n).unwrap()))
        .collect();
    for (name, t) in tensors.iter_mut() {
        if name == key {
            let short: Vec<f32> = t.iter().skip(1).copied().collect();
            *t = ndarray::ArrayD::from_shape_vec(vec![short.len()], short).unwrap();
        }
    }
    assert!(end - start == 4 * 24 && !data.is_empty());
    let views: Vec<_> = tensors.iter().map(|(n, t)| (n.clone(), t.view())).collect();
    rnn_wgpu::tensor_file::write_f32(&bad, &views, file.metadata().clone()).unwrap();
    assert_refused(
        &rnn_wgpu(&sample),
        "optim.exp_avg.bias_hh_l0: expected shape (24), one per element of bias_hh_l0, got [23]",
    );
    for (key, value, want) in [
        // adam_step wrapped through `as i32` into NaN training.
        (
            "adam_step",
            "4294967297",
            "adam_step 4294967297 is past any run's",
        ),
        (
            "step",
            "18446744073709551615",
            "step 18446744073709551615 is past any run's",
        ),
        // Unsorted or repeated vocabularies mapped ids to the wrong characters.
        (
            "vocab",
            "\"  .abehinoqrstu\"",
            "not sorted and unique: ' ' comes before ' ' at 1",
        ),
        (
            "vocab",
            "\" ,.abehinoqrsut\"",
            "not sorted and unique: 'u' comes before 't' at 14",
        ),
        ("lr", "NaN", "lr NaN is not a finite number above 0"),
        ("mode", "\u{1b}[2J", "unknown mode '\\u{1b}[2J'"),
    ] {
        edit_header(&ck, &bad, |h| set_meta(h, key, value));
        let out = rnn_wgpu(&sample);
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        assert_refused(&out, want);
    }
    // A key written twice: the last one won.
    let bytes = std::fs::read(&ck).unwrap();
    let (header, data) = common::files::split(&bytes).unwrap();
    let twice = header.to_string().replacen(
        "\"__metadata__\":{",
        "\"__metadata__\":{\"hidden_size\":\"7\",",
        1,
    );
    std::fs::write(&bad, common::files::join(&twice, data)).unwrap();
    assert_refused(
        &rnn_wgpu(&sample),
        "the header has the key 'hidden_size' twice",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn f64_values_past_the_f32_range_are_refused() {
    let dir = scratch("safety-f64");
    let path = dir.join("wide.safetensors");
    // A one-tensor state_dict stored in f64 with a value of 1e300.
    let bytes: Vec<u8> = [1.0f64, 1e300]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let header = r#"{"weight_ih_l0":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}"#;
    std::fs::write(&path, common::files::join(header, &bytes)).unwrap();
    let file = rnn_wgpu::tensor_file::TensorFile::read(&path).unwrap();
    let err = file.f32("weight_ih_l0").unwrap_err().to_string();
    assert!(
        err.contains("holds a value past the f32 range at flat index 1"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn runs_do_not_lose_work() {
    let dir = scratch("safety-runs");
    let data = write_text(&dir);
    let out_dir = dir.join("out");
    let small = || {
        train_small(
            &data,
            &out_dir,
            &["--hidden", "6", "--layers", "1", "--steps", "2"],
        )
    };
    // A second run into an --out in use is refused, naming the first run's process.
    let held = rnn_wgpu::out_dir::OutDir::claim(&out_dir).unwrap();
    let out = small();
    assert_refused(
        &out,
        &format!(
            "another run (process {}) is writing here",
            std::process::id()
        ),
    );
    drop(held);
    // Temp files of killed writers are removed on the next write; a live one's stays.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = out_dir.join(format!(".checkpoint.safetensors.tmp-{dead}"));
    let live = out_dir.join(format!(
        ".checkpoint.safetensors.tmp-{}",
        std::process::id()
    ));
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    std::fs::write(&live, b"being written").unwrap();
    let out = small();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!stale.exists() && live.exists());
    // An --out that cannot be made is found before training, not at the first checkpoint.
    let not_a_dir = data.join("out");
    let started = std::time::Instant::now();
    let out = rnn_wgpu(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        not_a_dir.to_str().unwrap(),
    ]);
    assert_refused(&out, "cannot create");
    assert!(started.elapsed().as_secs() < 10);
    // Inputs that are not regular files: /dev/zero was read until memory ran out.
    let out = rnn_wgpu(&[
        "train",
        "--data",
        "/dev/zero",
        "--out",
        dir.join("z").to_str().unwrap(),
    ]);
    assert_refused(&out, "/dev/zero: not a regular file");
    let ck = out_dir.join("checkpoint.safetensors");
    let out = rnn_wgpu(&[
        "run",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--input",
        "/dev/zero",
    ]);
    assert_refused(&out, "/dev/zero: not a regular file");
    // Numeric options out of range (with --seconds NaN a run never stopped).
    for (flag, value) in [
        ("--seconds", "NaN"),
        ("--lr", "1e39"),
        ("--clip", "NaN"),
        ("--lr", "-0.1"),
    ] {
        let out = rnn_wgpu(&["train", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        assert!(text(&out.stderr).contains(&format!("invalid value '{value}' for '{flag}")));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
