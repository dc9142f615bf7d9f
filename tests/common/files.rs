//! Raw safetensors surgery for the tests that feed readers damaged files: the JSON header and
//! the data apart, and back together.

use serde_json::Value;

/// A safetensors file split into its JSON header and its data.
pub fn split(bytes: &[u8]) -> Option<(Value, &[u8])> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header = serde_json::from_slice(bytes.get(8..8 + len)?).ok()?;
    Some((header, &bytes[8 + len..]))
}

/// A file of `header` (JSON text, written as given) and `data`.
pub fn join(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// `source` with `edit` applied to its header, written to `target`.
pub fn edit_header(
    source: &std::path::Path,
    target: &std::path::Path,
    edit: impl FnOnce(&mut Value),
) {
    let bytes = std::fs::read(source).unwrap();
    let (mut header, data) = split(&bytes).unwrap();
    edit(&mut header);
    std::fs::write(target, join(&header.to_string(), data)).unwrap();
}

/// `source` with `edit` applied to the f32 values of tensor `name`, written to `target`.
pub fn edit_f32(
    source: &std::path::Path,
    target: &std::path::Path,
    name: &str,
    edit: impl FnOnce(&mut [f32]),
) {
    let bytes = std::fs::read(source).unwrap();
    let (header, data) = split(&bytes).unwrap();
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize;
    let end = header[name]["data_offsets"][1].as_u64().unwrap() as usize;
    let mut values: Vec<f32> = data[start..end]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    edit(&mut values);
    let mut data = data.to_vec();
    for (i, v) in values.iter().enumerate() {
        data[start + 4 * i..start + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    std::fs::write(target, join(&header.to_string(), &data)).unwrap();
}

/// A FIFO at `path`.
pub fn mkfifo(path: &std::path::Path) {
    let name = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Whether `path` is a FIFO (not followed if a link).
pub fn is_fifo(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}
