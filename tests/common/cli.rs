//! The `rnn-wgpu` binary as the CLI tests run it, and the small training run several of them
//! start from.
//!
//! Every run gets a working directory of its own (`Sandbox`), never the checkout: a test passes
//! every path it means (`repo` for the committed test data, a scratch directory for what it
//! writes), so the suite neither reads nor writes a user's `runs/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A committed file of the checkout, by its path from the repository root (read only).
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `repo(path)` as the string an argument list takes.
pub fn repo_arg(path: &str) -> String {
    repo(path)
        .to_str()
        .expect("a UTF-8 checkout path")
        .to_string()
}

/// Where `train` writes and `sample`, `run`, `eval` and `export` read by default.
const DEFAULT_CHECKPOINT: &str = "runs/char_lm/checkpoint.safetensors";

/// What the decoy checkpoint holds: not a checkpoint, so a test that leaves a path at its
/// default fails on it.
const DECOY: &[u8] = b"a decoy: the CLI tests pass every path, so no run reads or writes this";

/// The binary's working directory for one run: a fresh directory holding a decoy where the
/// default checkpoint goes, as a user's checkout does after `train`. A run that left a path at
/// its default meets it (`train` refuses to replace it, `sample` cannot read it), and after the
/// run the directory must hold the decoy alone, unchanged: the binary wrote nothing where it
/// was started.
pub struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rnn-wgpu-cwd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let decoy = dir.join(DEFAULT_CHECKPOINT);
        std::fs::create_dir_all(decoy.parent().unwrap()).unwrap();
        std::fs::write(&decoy, DECOY).unwrap();
        Sandbox { dir }
    }

    /// The binary, to be started in this directory.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rnn-wgpu"));
        cmd.current_dir(&self.dir);
        cmd
    }

    /// Panics unless the directory holds the decoy alone, as it was made.
    pub fn assert_untouched(&self) {
        let mut found = Vec::new();
        list_files(&self.dir, &mut found);
        let decoy = self.dir.join(DEFAULT_CHECKPOINT);
        assert_eq!(
            found,
            std::slice::from_ref(&decoy),
            "a CLI run wrote into its working directory"
        );
        assert_eq!(
            std::fs::read(&decoy).unwrap(),
            DECOY,
            "a CLI run changed {DEFAULT_CHECKPOINT} in its working directory"
        );
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every file and empty folder below `dir`.
fn list_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    if entries.is_empty() {
        found.push(dir.to_path_buf());
    }
    entries.sort();
    for path in entries {
        if path.is_dir() && !path.is_symlink() {
            list_files(&path, found);
        } else {
            found.push(path);
        }
    }
}

/// Runs the binary with `args` in a sandbox and checks that it wrote nothing there.
pub fn rnn_wgpu(args: &[&str]) -> Output {
    let sandbox = Sandbox::new();
    let out = sandbox.command().args(args).output().expect("binary runs");
    sandbox.assert_untouched();
    out
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A short training text in `dir`; its vocabulary is the 15 characters ` ,.abehinoqrstu`.
pub fn write_text(dir: &Path) -> PathBuf {
    let data = dir.join("text.txt");
    std::fs::write(
        &data,
        "to be or not to be, that is the question. ".repeat(30),
    )
    .unwrap();
    data
}

/// `train` on the CPU over `data` into `out` with windows of 8 x 2 characters; `model` gives
/// the size and length of the run (`--hidden`, `--layers`, `--steps`, ...).
pub fn train_small(data: &Path, out: &Path, model: &[&str]) -> Output {
    let (data, out) = (data.to_str().unwrap(), out.to_str().unwrap());
    let common = [
        "train",
        "--data",
        data,
        "--backend",
        "cpu",
        "--seq",
        "8",
        "--batch",
        "2",
    ];
    rnn_wgpu(&[&common[..], &["--out", out], model].concat())
}

/// A fresh scratch directory of this test process, `rnn-wgpu-{name}-{pid}` in the temp dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rnn-wgpu-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Exit 2 with one `error:` line of at most 4 KiB containing `want`.
pub fn assert_refused(out: &Output, want: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}{}", text(&out.stdout));
    assert!(
        stderr.starts_with("error: ")
            && stderr.lines().count() == 1
            && stderr.len() <= 4096
            && stderr.contains(want),
        "wanted one error line of at most 4 KiB with {want:?}, got {} bytes: {:?}",
        stderr.len(),
        stderr.chars().take(600).collect::<String>()
    );
}

/// A small trained character checkpoint in `dir` (3 steps of a 2-layer LSTM, H=6).
pub fn char_checkpoint(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let model = ["--hidden", "6", "--layers", "2", "--steps", "3"];
    let out = train_small(&write_text(dir), dir, &model);
    assert!(out.status.success(), "{}", text(&out.stderr));
    dir.join("checkpoint.safetensors")
}
