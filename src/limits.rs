//! Validate, then allocate: the sizes that a file, an option or a config asks for are multiplied
//! out with overflow checks and compared with what this machine can hold before any buffer is
//! made, so that a 600-byte file claiming `hidden_size = 1e12` gets an error, not an abort.

use std::path::Path;
use std::sync::OnceLock;

use crate::error::{Result, RnnError};

/// The largest file any reader loads (checkpoints, cases, state_dicts, texts, CSV): past it a
/// file is refused before it is read.
pub const MAX_INPUT_FILE_BYTES: u64 = 8 << 30;

/// The product of `dims`, or an error naming `what` when it does not fit in a `usize`.
pub fn checked_product(what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| RnnError::TooLarge {
            what: what.to_string(),
            needed: format!(
                "{} elements",
                dims.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(" x ")
            ),
            limit: "a usize can count".into(),
        })
}

/// The host memory a new allocation may take: MemAvailable when the model was first sized
/// (Linux), else no limit beyond the address space. Read once: it is a guard against absurd
/// sizes, not an accountant.
pub fn available_memory() -> Option<u64> {
    static AVAILABLE: OnceLock<Option<u64>> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    })
}

/// The most bytes one allocation may ask for: the host memory available, else the address
/// space.
fn memory_limit() -> u128 {
    available_memory().map_or(isize::MAX as u128, u128::from)
}

/// Whether `values` elements of `bytes_per_value` bytes each fit in the host memory available.
pub fn fits_in_memory(values: usize, bytes_per_value: usize) -> bool {
    (values as u128) * (bytes_per_value as u128) <= memory_limit()
}

/// Refuses `values` elements of `bytes_per_value` bytes each when they exceed the host memory
/// available, naming `what` and the sizes.
pub fn check_host_bytes(what: &str, values: usize, bytes_per_value: usize) -> Result<()> {
    let bytes = (values as u128) * (bytes_per_value as u128);
    let limit = memory_limit();
    if bytes > limit {
        return Err(RnnError::TooLarge {
            what: what.to_string(),
            needed: format!("{} ({values} values)", human_bytes(bytes)),
            limit: format!("the {} of memory available", human_bytes(limit)),
        });
    }
    Ok(())
}

/// Bytes as a person reads them: `1.5 GB`.
pub fn human_bytes(bytes: u128) -> String {
    let units = ["bytes", "KB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// An input file must be a regular file (not `/dev/zero`, a FIFO or a directory) no larger than
/// `MAX_INPUT_FILE_BYTES`; returns its length.
pub fn check_input_file(path: &Path) -> Result<u64> {
    let error = |message: String| RnnError::File {
        path: path.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| error(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(error("not a regular file".into()));
    }
    if meta.len() > MAX_INPUT_FILE_BYTES {
        return Err(error(format!(
            "{} is larger than the {} an input may be",
            human_bytes(meta.len().into()),
            human_bytes(MAX_INPUT_FILE_BYTES.into())
        )));
    }
    Ok(meta.len())
}

/// The bytes of an input file, after `check_input_file`.
pub fn read_input_file(path: &Path) -> Result<Vec<u8>> {
    check_input_file(path)?;
    std::fs::read(path).map_err(|e| RnnError::File {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })
}

/// Text for messages: control characters escaped, so that a file's metadata cannot move the
/// cursor or ring the terminal's bell.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// The most characters an error line shows: a message that echoes what a file holds (a CSV
/// field, a lock file) is cut there, so the line stays one readable line (at most 3.2 KB of
/// UTF-8, escapes included).
pub const MAX_ERROR_CHARS: usize = 800;

/// `printable(text)` cut to `max` characters, then `...` and how long the whole was.
pub fn printable_capped(text: &str, max: usize) -> String {
    let shown = printable(&text.chars().take(max + 1).collect::<String>());
    if shown.chars().count() <= max {
        return shown;
    }
    let head: String = shown.chars().take(max).collect();
    format!(
        "{head}... (cut: {} characters in all)",
        text.chars().count()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_after_their_escapes() {
        assert_eq!(printable_capped("a\nb", 10), "a\\nb");
        assert_eq!(printable_capped("abcdef", 6), "abcdef");
        assert_eq!(
            printable_capped("abcdefgh", 3),
            "abc... (cut: 8 characters in all)"
        );
        // Escapes count as what is shown: "\n" is two characters.
        assert_eq!(
            printable_capped("\n\n\n", 3),
            "\\n\\... (cut: 3 characters in all)"
        );
    }

    #[test]
    fn products_that_overflow_are_errors() {
        assert_eq!(checked_product("x", &[3, 4, 5]).unwrap(), 60);
        assert!(checked_product("x", &[usize::MAX, 2]).is_err());
    }

    #[test]
    fn sizes_past_the_memory_are_refused_with_their_bytes() {
        let err = check_host_bytes("weights", usize::MAX / 8, 4).unwrap_err();
        assert!(err.to_string().starts_with("weights would take "), "{err}");
        check_host_bytes("weights", 1000, 4).unwrap();
        assert_eq!(human_bytes(1_500_000_000), "1.5 GB");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
    }
}
