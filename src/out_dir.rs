//! An output directory held by one run: created and proven writable before any work is spent,
//! and locked, so that a second run into the same directory is refused instead of silently
//! writing over the first one's checkpoints.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, RnnError};

/// Held for the whole run; the lock goes with the process (also when it is killed).
#[derive(Debug)]
pub struct OutDir {
    path: PathBuf,
    _lock: File,
}

/// The lock file inside the directory; it holds the owning process's id.
pub const LOCK_FILE: &str = ".rnn-wgpu.lock";

impl OutDir {
    /// Creates `path` if needed, writes its lock file (so an unwritable directory fails now),
    /// and takes an exclusive lock on it.
    pub fn claim(path: &Path) -> Result<Self> {
        let error = |message: String| RnnError::File {
            path: path.to_path_buf(),
            message,
        };
        std::fs::create_dir_all(path).map_err(|e| error(format!("cannot create: {e}")))?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.join(LOCK_FILE))
            .map_err(|e| error(format!("cannot write here: {e}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = lock.read_to_string(&mut owner);
                let owner = owner.trim();
                return Err(error(format!(
                    "another run (process {}) is writing here: wait for it to end or choose another --out",
                    if owner.is_empty() { "?" } else { owner }
                )));
            }
            Err(TryLockError::Error(e)) => return Err(error(format!("cannot lock: {e}"))),
        }
        let written = lock
            .set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| write!(lock, "{}", std::process::id()))
            .and_then(|()| lock.flush());
        written.map_err(|e| error(format!("cannot write here: {e}")))?;
        Ok(OutDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
