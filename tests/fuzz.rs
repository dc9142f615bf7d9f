//! A seeded mutation fuzzer over the project's own files, through every reader: parity cases
//! (`parity`, CPU and GPU), character checkpoints (`sample`, `run`, `train --resume`),
//! regression checkpoints (`run` on CSV), PyTorch state_dicts (`interop::load_state_dict`),
//! and text and CSV inputs. Each mutant runs in a child process under a memory limit
//! (RLIMIT_AS) and a time limit; the child must exit 0 with a finite result, or print a clear
//! `error:` line and exit non-zero: never a panic, an abort, a signal or a hang.
//!
//! `FUZZ_MUTANTS=N` sets the number of mutants (default 4000); `bench/fuzz.sh N` runs more.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::Sandbox;
use common::files::{is_fifo, join, mkfifo, split};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

/// Memory a CPU child may map; a GPU child maps lavapipe's and LLVM's too.
const CPU_MEMORY: u64 = 3 << 30;
const GPU_MEMORY: u64 = 12 << 30;
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// Values that header fields and metadata are set to: signs, zero, one, sizes no machine
/// holds, non-numbers, control bytes.
const ODD_VALUES: [&str; 12] = [
    "-1",
    "0",
    "1",
    "1000000000000",
    "18446744073709551615",
    "abc",
    "NaN",
    "inf",
    "",
    "1e30",
    "\u{1b}[31mred\u{7}",
    "3.5",
];

/// Which program reads a mutant, and how.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reader {
    ParityCpu,
    ParityGpu,
    Sample,
    RunText,
    RunTextGpu,
    Resume,
    RunCsv,
    StateDict,
    /// `inspect`, which reads any safetensors file: whatever it holds, a listing or one error.
    Inspect,
    Export,
}

impl Reader {
    fn gpu(self) -> bool {
        matches!(self, Reader::ParityGpu | Reader::RunTextGpu)
    }
}

/// The files mutated, made or copied into a scratch directory once.
struct Corpus {
    /// The working directory of every run: the binary writes nothing there.
    cwd: Sandbox,
    dir: PathBuf,
    text: PathBuf,
    csv: PathBuf,
    bases: Vec<(Reader, PathBuf)>,
}

fn corpus() -> Corpus {
    let dir = std::env::temp_dir().join(format!("rnn-wgpu-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = common::cli::write_text(&dir);
    // A character checkpoint with moments and a carried state (3 steps of a small LSTM).
    let run = dir.join("char");
    let model = ["--hidden", "6", "--layers", "2", "--steps", "3"];
    let out = common::cli::train_small(&text, &run, &model);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let char_ck = run.join("checkpoint.safetensors");
    // A regression checkpoint over two columns, one of them a log change.
    let regression = dir.join("regression.safetensors");
    write_regressor(&regression);
    let csv = dir.join("rows.csv");
    let rows: String = (1..30)
        .map(|i| format!("{},{}\n", 100 + i * 3, (i * 7) % 11))
        .collect();
    std::fs::write(&csv, format!("passengers,temp\n{rows}")).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let parity = |name: &str| repo.join("tests/data/parity").join(name);
    let bases = vec![
        (Reader::ParityCpu, parity("rnn_tanh_small.safetensors")),
        (Reader::ParityCpu, parity("lstm_bidir.safetensors")),
        (Reader::ParityCpu, parity("train_gru_charlm.safetensors")),
        (Reader::ParityGpu, parity("gru_2layer.safetensors")),
        (Reader::Sample, char_ck.clone()),
        (Reader::RunText, char_ck.clone()),
        (Reader::RunTextGpu, char_ck.clone()),
        (Reader::Export, char_ck.clone()),
        (Reader::Resume, char_ck),
        (
            Reader::Inspect,
            repo.join("tests/data/interop/whole_model_f16.safetensors"),
        ),
        (Reader::RunCsv, regression),
        (
            Reader::StateDict,
            repo.join("examples/data/lstm_state_dict.safetensors"),
        ),
    ];
    Corpus {
        cwd: Sandbox::new(),
        dir,
        text,
        csv,
        bases,
    }
}

fn write_regressor(path: &Path) {
    use rnn_wgpu::regression::{ColumnTransform, RegressionSpec, Regressor};
    let column = |name: &str, log_change: bool| ColumnTransform {
        column: name.into(),
        log_change,
        mean: 0.1,
        std: 0.5,
    };
    let spec = RegressionSpec {
        mode: rnn_wgpu::Mode::Gru,
        hidden: 4,
        layers: 1,
        look_back: 3,
        inputs: vec![column("passengers", true), column("temp", false)],
        target: column("passengers", true),
        trained_on: None,
    };
    Regressor::new(spec, 0).unwrap().save(path).unwrap();
}

/// What a mutant may do: any clean outcome, or only a refusal (an error, a FAIL) because the
/// mutation is one no reader may accept.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Must {
    EndCleanly,
    BeRefused,
    /// Refused by the parity harness (other readers ignore tensors they do not read).
    FailParity,
}

/// One mutant of `bytes`, drawn from `rng`, and what a reader must do with it.
fn mutate(bytes: &[u8], rng: &mut StdRng) -> (Vec<u8>, Must) {
    let (header, data) = split(bytes).expect("a base file parses");
    let header_end = bytes.len() - data.len();
    let tensors: Vec<String> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    let mut header = header;
    // A file without metadata (a PyTorch state_dict) gets some, for the metadata mutations.
    if header.get("__metadata__").is_none() {
        header["__metadata__"] = serde_json::json!({ "format": "pt" });
    }
    let odd = |rng: &mut StdRng| ODD_VALUES[rng.random_range(0..ODD_VALUES.len())].to_string();
    match rng.random_range(0..10) {
        // Truncation anywhere.
        0 => (
            bytes[..rng.random_range(0..bytes.len())].to_vec(),
            Must::BeRefused,
        ),
        // Byte flips in the header or the data.
        1 | 2 => {
            let mut out = bytes.to_vec();
            let (start, end) = if rng.random_range(0..2) == 0 {
                (0, header_end)
            } else {
                (header_end, bytes.len())
            };
            for _ in 0..rng.random_range(1..4) {
                if end > start {
                    let at = rng.random_range(start..end);
                    out[at] ^= 1 << rng.random_range(0..8);
                }
            }
            (out, Must::EndCleanly)
        }
        // A metadata value changed to an odd one, or the vocabulary made odd.
        3 | 4 => {
            let meta = header["__metadata__"].as_object_mut().unwrap();
            let keys: Vec<String> = meta.keys().cloned().collect();
            // The vocabulary, where there is one, a third of the time: it has five odd forms.
            let key = match keys.iter().find(|k| *k == "vocab") {
                Some(vocab) if rng.random_range(0..3) == 0 => vocab,
                _ => &keys[rng.random_range(0..keys.len())],
            };
            let mut must = Must::EndCleanly;
            let value = if key == "vocab" {
                // Unsorted, repeated, or too short for the tensors: never a usable vocabulary.
                must = Must::BeRefused;
                let vocab: String = serde_json::from_str(meta[key].as_str().unwrap()).unwrap();
                let mut chars: Vec<char> = vocab.chars().collect();
                let at = rng.random_range(0..chars.len() - 1);
                match rng.random_range(0..5) {
                    0 => chars.reverse(),
                    1 => chars.push(chars[0]),
                    2 => chars.truncate(1),
                    // The same size as the tensors: only the order or the repeat tells.
                    3 => chars.swap(at, at + 1),
                    _ => chars[at + 1] = chars[at],
                }
                serde_json::to_string(&chars.into_iter().collect::<String>()).unwrap()
            } else if key == "spec" {
                // A number inside the regression spec.
                let mut spec: Value = serde_json::from_str(meta[key].as_str().unwrap()).unwrap();
                let field = ["hidden", "layers", "look_back"][rng.random_range(0..3)];
                spec[field] = odd(rng).parse::<f64>().map_or(Value::Null, Value::from);
                if rng.random_range(0..2) == 0 {
                    spec["target"]["std"] = Value::from(0.0);
                }
                spec.to_string()
            } else {
                odd(rng)
            };
            meta.insert(key.clone(), Value::String(value));
            (join(&header.to_string(), data), must)
        }
        // A tensor's dtype, shape or offsets changed.
        5 | 6 => {
            let name = &tensors[rng.random_range(0..tensors.len())];
            let tensor = &mut header[name];
            match rng.random_range(0..3) {
                0 => {
                    let dtypes = ["F64", "F16", "BF16", "I64", "BOOL", "U8", "XX"];
                    tensor["dtype"] = Value::from(dtypes[rng.random_range(0..dtypes.len())]);
                }
                1 => {
                    let shape = tensor["shape"].as_array_mut().unwrap();
                    if !shape.is_empty() {
                        let at = rng.random_range(0..shape.len());
                        shape[at] = match rng.random_range(0..4) {
                            0 => Value::from(0),
                            1 => Value::from(1_000_000_000_000u64),
                            2 => Value::from(u64::MAX),
                            _ => Value::from(-1),
                        };
                    }
                }
                _ => {
                    let offsets = tensor["data_offsets"].as_array_mut().unwrap();
                    offsets[rng.random_range(0..2)] = Value::from(rng.random_range(0..100_000u64));
                }
            }
            (join(&header.to_string(), data), Must::EndCleanly)
        }
        // NaN or infinity written into a tensor's data.
        7 => {
            let name = &tensors[rng.random_range(0..tensors.len())];
            let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize;
            let end = header[name]["data_offsets"][1].as_u64().unwrap() as usize;
            let mut data = data.to_vec();
            let mut must = Must::EndCleanly;
            if header[name]["dtype"] == "F32" && end >= start + 4 && rng.random_range(0..3) == 0 {
                // Finite values that overflow: the whole tensor +-3e38, which loads (it is
                // finite) and must then give a finite result or a clean error, never a panic
                // or NaN printed as a result.
                for (k, at) in (start..end).step_by(4).enumerate() {
                    let huge = if k % 2 == 0 { 3e38f32 } else { -3e38 };
                    data[at..at + 4].copy_from_slice(&huge.to_le_bytes());
                }
            } else if header[name]["dtype"] == "F32" && end >= start + 4 {
                // Every f32 tensor of these files is read: a weight, moment or state must be
                // refused, an expected tensor or an input must fail its case.
                must = Must::BeRefused;
                let at = start + 4 * rng.random_range(0..(end - start) / 4);
                let bad = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.random_range(0..3)];
                data[at..at + 4].copy_from_slice(&bad.to_le_bytes());
            }
            (join(&header.to_string(), &data), must)
        }
        // A key written twice (the second one wins in a plain JSON map).
        8 => {
            let text = header.to_string();
            let meta = header["__metadata__"].as_object().unwrap();
            let key = meta.keys().next().unwrap();
            let duplicated = text.replacen(
                "\"__metadata__\":{",
                &format!("\"__metadata__\":{{\"{key}\":\"{}\",", odd(rng)),
                1,
            );
            (join(&duplicated, data), Must::BeRefused)
        }
        // A tensor removed, one added that no reader expects, or one cut short; the file
        // stays well-formed (offsets contiguous), so only the readers' own checks can tell.
        _ => {
            let name = tensors[rng.random_range(0..tensors.len())].clone();
            let mut entries = entries(&header, data);
            let at = entries.iter().position(|(n, _, _)| *n == name).unwrap();
            let must = match rng.random_range(0..3) {
                0 => {
                    entries.remove(at);
                    // Every tensor of a checkpoint, state_dict or case is needed (a carried
                    // state is optional, and the state_dict reader must name what is missing).
                    if name.starts_with("state.") {
                        Must::FailParity
                    } else {
                        Must::BeRefused
                    }
                }
                1 => {
                    let copy = entries[at].clone();
                    entries.push((format!("expected.{name}.extra"), copy.1, copy.2));
                    Must::FailParity
                }
                _ => {
                    let (_, info, bytes) = &mut entries[at];
                    let width = match info["dtype"].as_str() {
                        Some("F64" | "I64") => 8,
                        _ => 4,
                    };
                    let count = bytes.len() / width;
                    let keep = if count >= 2 {
                        rng.random_range(1..count)
                    } else {
                        0
                    };
                    bytes.truncate(keep * width);
                    info["shape"] = Value::from(vec![keep]);
                    Must::BeRefused
                }
            };
            (rebuild(&header, entries), must)
        }
    }
}

/// (name, header entry, data bytes) of every tensor, in data order.
fn entries(header: &Value, data: &[u8]) -> Vec<(String, Value, Vec<u8>)> {
    let mut out: Vec<_> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let start = v["data_offsets"][0].as_u64().unwrap() as usize;
            let end = v["data_offsets"][1].as_u64().unwrap() as usize;
            (k.clone(), v.clone(), data[start..end].to_vec())
        })
        .collect();
    out.sort_by_key(|(_, v, _)| v["data_offsets"][0].as_u64());
    out
}

/// A well-formed file of `entries` (offsets recomputed) with `header`'s metadata.
fn rebuild(header: &Value, entries: Vec<(String, Value, Vec<u8>)>) -> Vec<u8> {
    let mut out = serde_json::Map::new();
    out.insert("__metadata__".into(), header["__metadata__"].clone());
    let mut data = Vec::new();
    for (name, mut info, bytes) in entries {
        info["data_offsets"] = Value::from(vec![data.len(), data.len() + bytes.len()]);
        data.extend_from_slice(&bytes);
        out.insert(name, info);
    }
    join(&Value::Object(out).to_string(), &data)
}

/// Text and CSV mutants: random bytes spliced in, lines cut, numbers made odd.
fn mutate_text(text: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut out = text.to_vec();
    match rng.random_range(0..6) {
        // An unterminated quote: the rest of a CSV is one field, which an error must not echo.
        4 => {
            let at = rng.random_range(0..out.len());
            out.insert(at, b'"');
            out.extend(std::iter::repeat_n(b'x', 200_000));
        }
        // A value whose square overflows f64.
        5 => {
            let at = rng.random_range(0..out.len());
            out.splice(at..at, b"1e308,".iter().copied());
        }
        0 => out.truncate(rng.random_range(0..out.len())),
        1 => {
            for _ in 0..rng.random_range(1..8) {
                let at = rng.random_range(0..out.len());
                out[at] = rng.random_range(0..=255u8);
            }
        }
        2 => {
            let at = rng.random_range(0..out.len());
            let odd = ODD_VALUES[rng.random_range(0..ODD_VALUES.len())];
            out.splice(at..at, odd.bytes().chain([b',']));
        }
        _ => out = b"\n,,\n".repeat(rng.random_range(1..4)),
    }
    out
}

/// How a child ended.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

/// Runs `cmd` under the memory limit and the time limit.
fn run_limited(mut cmd: Command, memory: u64) -> Outcome {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: memory,
                rlim_max: memory,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("child starts");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = (
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        }),
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        }),
    );
    let start = Instant::now();
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (status, false);
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            break (child.wait().unwrap(), true);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Outcome {
        code: status.code(),
        stdout: readers.0.join().unwrap_or_default(),
        stderr: readers.1.join().unwrap_or_default(),
        timed_out,
    }
}

/// The FIFO in each worker's scratch directory that some exports aim at.
const FIFO: &str = "exported-fifo";

/// The command that feeds `mutant` to `reader`; `to_fifo` points an export at the FIFO.
fn command(
    reader: Reader,
    mutant: &Path,
    corpus: &Corpus,
    scratch: &Path,
    to_fifo: bool,
) -> Command {
    let path = mutant.to_str().unwrap();
    let mut cmd = corpus.cwd.command();
    match reader {
        Reader::ParityCpu => cmd.args(["parity", path]),
        Reader::ParityGpu => cmd.args(["parity", "--backend", "gpu", path]),
        Reader::Inspect => cmd.args(["inspect", path]),
        Reader::Export => {
            let name = if to_fifo {
                FIFO
            } else {
                "exported.safetensors"
            };
            let out = scratch.join(name);
            cmd.args(["export", "--checkpoint", path, "--overwrite"])
                .args(["--out", out.to_str().unwrap()])
        }
        Reader::Sample => cmd.args([
            "sample",
            "--checkpoint",
            path,
            "--prime",
            "to",
            "--len",
            "8",
        ]),
        Reader::RunText | Reader::RunTextGpu | Reader::RunCsv => {
            let input = match reader {
                Reader::RunCsv => &corpus.csv,
                _ => &corpus.text,
            };
            let backend = if reader.gpu() { "gpu" } else { "cpu" };
            cmd.args([
                "run",
                "--checkpoint",
                path,
                "--input",
                input.to_str().unwrap(),
            ])
            .args(["--backend", backend])
        }
        Reader::Resume => {
            let out = scratch.join("resume");
            std::fs::create_dir_all(&out).unwrap();
            std::fs::copy(mutant, out.join("checkpoint.safetensors")).unwrap();
            cmd.args(["train", "--resume", "--backend", "cpu", "--steps", "5"])
                .args(["--data", corpus.text.to_str().unwrap()])
                .args(["--out", out.to_str().unwrap()])
        }
        Reader::StateDict => {
            let mut me = Command::new(std::env::current_exe().unwrap());
            me.args([
                "--exact",
                "load_state_dict_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("FUZZ_STATE_DICT", path);
            return me;
        }
    };
    cmd
}

/// The rule every run must keep; the reason it broke otherwise.
fn verdict(reader: Reader, must: Must, outcome: &Outcome) -> Result<(), String> {
    if outcome.timed_out {
        return Err("did not end within the time limit".into());
    }
    let Some(code) = outcome.code else {
        return Err("killed by a signal".into());
    };
    let all = format!("{}{}", outcome.stdout, outcome.stderr);
    if all.contains("panicked") || all.contains("memory allocation of") {
        return Err(format!("exit {code} with a panic or an abort"));
    }
    match code {
        0 => {
            let parity = matches!(reader, Reader::ParityCpu | Reader::ParityGpu);
            if must == Must::BeRefused || (must == Must::FailParity && parity) {
                return Err(format!("{must:?}, but exit 0"));
            }
            let garbage = ["NaN", "inf"];
            // A forecast or loss that is not finite is silent garbage.
            if reader != Reader::StateDict && garbage.iter().any(|g| outcome.stdout.contains(g)) {
                return Err("exit 0 with a non-finite result".into());
            }
            Ok(())
        }
        // parity: some tensor failed; its FAIL lines say which.
        1 if matches!(reader, Reader::ParityCpu | Reader::ParityGpu) => {
            if outcome.stdout.contains("FAIL") {
                Ok(())
            } else {
                Err("exit 1 without a FAIL line".into())
            }
        }
        2 | 3 => {
            let last = outcome.stderr.trim_end().lines().last().unwrap_or("");
            if last.starts_with("error: ") && !last.contains('\u{1b}') && last.len() <= 4096 {
                Ok(())
            } else {
                Err(format!("exit {code} without one clear error line"))
            }
        }
        _ => Err(format!("exit {code}")),
    }
}

/// The child of `Reader::StateDict`: loads the file `FUZZ_STATE_DICT` names, exiting 0 on
/// success or 2 with the error; without the variable it does nothing.
#[test]
fn load_state_dict_child() {
    let Ok(path) = std::env::var("FUZZ_STATE_DICT") else {
        return;
    };
    match rnn_wgpu::interop::load_state_dict(Path::new(&path), rnn_wgpu::Mode::Lstm, "", true) {
        Ok(model) => {
            let x = ndarray::Array3::<f32>::ones((2, 3, model.config().input_size));
            let out = model.forward(x.view(), None, None);
            match out {
                Ok(out) if out.output.iter().all(|v| v.is_finite()) => std::process::exit(0),
                Ok(_) => {
                    println!("NaN output");
                    std::process::exit(4)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(2)
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2)
        }
    }
}

#[test]
fn mutants_of_every_file_are_refused_clearly_or_run_to_a_finite_result() {
    let total: usize = std::env::var("FUZZ_MUTANTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4000);
    let gpu = common::gpu().is_some();
    let corpus = corpus();
    let mut failures = Vec::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    // Two workers: the machine's two cores.
    let workers = 2;
    let results: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let corpus = &corpus;
                scope.spawn(move || {
                    let scratch = corpus.dir.join(format!("worker-{w}"));
                    std::fs::create_dir_all(&scratch).unwrap();
                    mkfifo(&scratch.join(FIFO));
                    let mut lines = Vec::new();
                    for i in (w..total).step_by(workers) {
                        let mut rng = StdRng::seed_from_u64(i as u64);
                        // One in twelve mutates the text or CSV input instead of a file.
                        let (reader, base) = &corpus.bases[i % corpus.bases.len()];
                        if reader.gpu() && (!gpu || !(i / corpus.bases.len()).is_multiple_of(4)) {
                            // GPU children open a device each: a quarter of their mutants.
                            lines.push(format!("skip {reader:?}"));
                            continue;
                        }
                        let mutant = scratch.join(format!("mutant-{i}.safetensors"));
                        let text_mutant =
                            i % 12 == 11 && matches!(reader, Reader::RunText | Reader::RunCsv);
                        let mut must = Must::EndCleanly;
                        let cmd = if text_mutant {
                            let source = if *reader == Reader::RunCsv {
                                &corpus.csv
                            } else {
                                &corpus.text
                            };
                            let bytes = mutate_text(&std::fs::read(source).unwrap(), &mut rng);
                            let input = scratch.join(format!("input-{i}"));
                            std::fs::write(&input, bytes).unwrap();
                            let mut cmd = corpus.cwd.command();
                            cmd.args(["run", "--checkpoint", base.to_str().unwrap()])
                                .args(["--input", input.to_str().unwrap()]);
                            cmd
                        } else {
                            let (bytes, rule) = mutate(&std::fs::read(base).unwrap(), &mut rng);
                            // A listing shows what a file holds, refusable values included.
                            must = if *reader == Reader::Inspect {
                                Must::EndCleanly
                            } else {
                                rule
                            };
                            std::fs::write(&mutant, bytes).unwrap();
                            // A sixth of the exports aim at a FIFO: refused, and left a FIFO.
                            let to_fifo = *reader == Reader::Export && (i / 12) % 6 == 0;
                            if to_fifo {
                                must = Must::BeRefused;
                            }
                            command(*reader, &mutant, corpus, &scratch, to_fifo)
                        };
                        let memory = if reader.gpu() { GPU_MEMORY } else { CPU_MEMORY };
                        let outcome = run_limited(cmd, memory);
                        match verdict(*reader, must, &outcome) {
                            Ok(()) => lines.push(format!("ok {reader:?} {:?}", outcome.code)),
                            Err(why) => lines.push(format!(
                                "FAIL mutant {i} ({reader:?}, {}): {why}\nstdout: {}\nstderr: {}",
                                base.display(),
                                outcome.stdout.chars().take(600).collect::<String>(),
                                outcome.stderr.chars().take(600).collect::<String>()
                            )),
                        }
                    }
                    if !is_fifo(&scratch.join(FIFO)) {
                        lines.push(format!("FAIL worker {w}: an export replaced its FIFO"));
                    }
                    lines
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for line in results.into_iter().flatten() {
        if line.starts_with("FAIL") {
            failures.push(line);
        } else {
            *counts.entry(line).or_default() += 1;
        }
    }
    let ran: usize = counts
        .iter()
        .filter(|(k, _)| !k.starts_with("skip"))
        .map(|(_, n)| n)
        .sum::<usize>()
        + failures.len();
    let _ = std::fs::remove_dir_all(&corpus.dir);
    corpus.cwd.assert_untouched();
    assert!(
        failures.is_empty(),
        "{} of {ran} mutants broke the rule:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Past the harness's capture, as the GPU skips are: the count belongs in the CI log.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "fuzz: {ran} mutants, outcomes {counts:?}"
    );
    assert!(ran >= total * 3 / 4, "only {ran} of {total} mutants ran");
}
