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
        let mut lock = open_lock(&path.join(LOCK_FILE))
            .map_err(|e| error(format!("cannot write its lock file {LOCK_FILE}: {e}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                // The owner's process id, if the file holds one (never echo what else it holds).
                let mut owner = String::new();
                let _ = (&mut lock).take(20).read_to_string(&mut owner);
                let owner = owner.trim();
                let owner = if !owner.is_empty() && owner.bytes().all(|b| b.is_ascii_digit()) {
                    owner
                } else {
                    "?"
                };
                return Err(error(format!(
                    "another run (process {owner}) is writing here: wait for it to end or choose another --out"
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

/// The lock file: created exclusively where there is none; one a finished run left is opened
/// without following a link and must be a regular file (a link planted there would otherwise
/// have its target overwritten with the process id).
fn open_lock(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let lock = match options.clone().create_new(true).open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => options.open(path),
        opened => opened,
    }
    .map_err(refuse_link)?;
    let kind = lock.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind));
    }
    Ok(lock)
}

/// Refuses to replace anything at `path` but a regular file: a device, FIFO, socket, directory
/// or symbolic link stays as it is (renaming a new file over `/dev/null` would replace the
/// device node). Decided on a handle to what is there, opened without following a link, so a
/// link is judged as itself, not as its target.
pub fn check_replaceable(path: &Path) -> std::io::Result<()> {
    match open_without_following(path) {
        Ok(file) => {
            let kind = file.metadata()?.file_type();
            if kind.is_file() {
                Ok(())
            } else {
                Err(not_regular(kind))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(refuse_link(e)),
    }
}

/// A handle to whatever is at `path`, a link itself included; on Linux an `O_PATH` handle, which
/// opens a FIFO or a device without any effect on it.
#[cfg(target_os = "linux")]
fn open_without_following(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)
}

/// Elsewhere, what `lstat` says of `path` (a look before the write, not a handle), as an
/// `open_without_following` that yields the file only where it is a regular one.
#[cfg(not(target_os = "linux"))]
fn open_without_following(path: &Path) -> std::io::Result<File> {
    let kind = std::fs::symlink_metadata(path)?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind));
    }
    File::open(path)
}

/// What a non-regular file is, in words, as an error refusing to write there.
fn not_regular(kind: std::fs::FileType) -> std::io::Error {
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        special_kind(kind)
    };
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{what} is there, not a regular file: refusing to replace it"),
    )
}

#[cfg(unix)]
fn special_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: std::fs::FileType) -> &'static str {
    "a special file"
}

/// An open that met a link where `O_NOFOLLOW` forbade one (ELOOP), said in words.
fn refuse_link(e: std::io::Error) -> std::io::Error {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a symbolic link is there: refusing to write through it",
        );
    }
    e
}
