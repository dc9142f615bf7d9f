//! Safetensors files to and from ndarray: reading with every failure named, and writing
//! atomically (temp file, fsync, rename) so a checkpoint is never left half-written.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use safetensors::{Dtype, SafeTensors, View};

use crate::error::{Result, RnnError};
use crate::limits::printable;

/// One tensor as stored: its dtype, shape and little-endian bytes.
#[derive(Clone, Debug)]
struct StoredTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// A safetensors file read into memory.
#[derive(Clone, Debug)]
pub struct TensorFile {
    path: PathBuf,
    tensors: BTreeMap<String, StoredTensor>,
    metadata: HashMap<String, String>,
}

impl TensorFile {
    pub fn read(path: &Path) -> Result<Self> {
        let file_error = |message: String| RnnError::File {
            path: path.to_path_buf(),
            message,
        };
        let bytes = crate::limits::read_input_file(path)?;
        // safetensors keeps the last of two equal keys; a file that says two things is refused.
        if let Some(key) = duplicate_header_key(&bytes) {
            return Err(file_error(format!(
                "the header has the key '{}' twice",
                printable(&key)
            )));
        }
        let parsed = SafeTensors::deserialize(&bytes)
            .map_err(|e| file_error(format!("not a valid safetensors file: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| file_error(format!("not a valid safetensors file: {e}")))?;
        let tensors = parsed
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                // A zero-element tensor passes the byte count whatever its other dimensions:
                // those must still form an array this machine can index.
                let nonzero: Vec<usize> = view.shape().iter().copied().filter(|&d| d > 0).collect();
                let elements = crate::limits::checked_product(&name, &nonzero)?;
                if elements > isize::MAX as usize / 8 {
                    return Err(file_error(format!(
                        "tensor '{}' has the impossible shape {:?}",
                        printable(&name),
                        view.shape()
                    )));
                }
                let stored = StoredTensor {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    bytes: view.data().to_vec(),
                };
                Ok((name, stored))
            })
            .collect::<Result<_>>()?;
        Ok(TensorFile {
            path: path.to_path_buf(),
            tensors,
            metadata: header.metadata().clone().unwrap_or_default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `__metadata__` map of the header.
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// A metadata value that must be there.
    pub fn meta(&self, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| self.error(format!("metadata has no '{key}'")))
    }

    /// A metadata value parsed as a number or boolean.
    pub fn meta_parsed<V: std::str::FromStr>(&self, key: &str) -> Result<V> {
        let raw = self.meta(key)?;
        raw.parse().map_err(|_| {
            self.error(format!(
                "metadata '{key}' = '{}' is not a valid {}",
                printable(raw),
                std::any::type_name::<V>()
            ))
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// A float tensor by name as f32: F32 as stored, F16 and BF16 widened, F64 narrowed (a value
    /// past the f32 range is an error).
    pub fn f32(&self, name: &str) -> Result<ArrayD<f32>> {
        let t = self.stored(name)?;
        let values: Vec<f32> = match t.dtype {
            Dtype::F32 => t
                .bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
            Dtype::F64 => t
                .bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .enumerate()
                .map(|(i, v)| narrow(v).ok_or(i))
                .collect::<std::result::Result<_, usize>>()
                .map_err(|i| {
                    self.error(format!(
                        "tensor '{name}' holds a value past the f32 range at flat index {i}"
                    ))
                })?,
            // Half precision widens exactly, as PyTorch's load into an f32 module casts.
            Dtype::F16 => t
                .bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => t
                .bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(self.error(format!(
                    "tensor '{name}' is {other:?}, expected a float (F32, F64, F16 or BF16)"
                )));
            }
        };
        self.shaped(name, &t.shape, values)
    }

    /// How `name` is stored (F32, F16, ...).
    pub fn dtype(&self, name: &str) -> Result<Dtype> {
        Ok(self.stored(name)?.dtype)
    }

    /// The shape of `name` as stored.
    pub fn shape(&self, name: &str) -> Result<&[usize]> {
        Ok(&self.stored(name)?.shape)
    }

    /// An I64 tensor by name.
    pub fn i64(&self, name: &str) -> Result<ArrayD<i64>> {
        let t = self.stored(name)?;
        if t.dtype != Dtype::I64 {
            return Err(self.error(format!("tensor '{name}' is {:?}, expected I64", t.dtype)));
        }
        let values = t
            .bytes
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        self.shaped(name, &t.shape, values)
    }

    fn stored(&self, name: &str) -> Result<&StoredTensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| self.error(format!("has no tensor '{name}'")))
    }

    fn shaped<V>(&self, name: &str, shape: &[usize], values: Vec<V>) -> Result<ArrayD<V>> {
        ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|e| {
            self.error(format!(
                "tensor '{name}' does not fit its shape {shape:?}: {e}"
            ))
        })
    }

    fn error(&self, message: String) -> RnnError {
        RnnError::File {
            path: self.path.clone(),
            message,
        }
    }
}

/// f64 to f32, `None` for a finite value past f32's range (NaN and infinities stay what they
/// are, for the readers that check them to name).
fn narrow(v: f64) -> Option<f32> {
    let narrow = v as f32;
    (narrow.is_finite() || !v.is_finite()).then_some(narrow)
}

/// The first key that a JSON object of the header holds twice, at any depth; `None` for a
/// header without repeats (or one that does not parse: safetensors then says why).
fn duplicate_header_key(bytes: &[u8]) -> Option<String> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let header = bytes.get(8..8usize.checked_add(usize::try_from(len).ok()?)?)?;
    let mut found = None;
    let mut de = serde_json::Deserializer::from_slice(header);
    serde::Deserializer::deserialize_any(&mut de, DuplicateFinder(&mut found)).ok()?;
    found
}

/// Walks a JSON value, noting the first key an object repeats.
struct DuplicateFinder<'a>(&'a mut Option<String>);

impl<'de> serde::de::Visitor<'de> for DuplicateFinder<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value_seed(Seed(&mut *self.0))?;
            if !seen.insert(key.clone()) && self.0.is_none() {
                *self.0 = Some(key);
            }
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        while seq.next_element_seed(Seed(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> std::result::Result<(), E> {
        Ok(())
    }
}

/// A nested value for `DuplicateFinder`.
struct Seed<'a>(&'a mut Option<String>);

impl<'de> serde::de::DeserializeSeed<'de> for Seed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> std::result::Result<(), D::Error> {
        de.deserialize_any(DuplicateFinder(self.0))
    }
}

/// An f32 tensor borrowed for writing.
struct F32View<'a> {
    shape: Vec<usize>,
    data: Cow<'a, [f32]>,
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

/// Writes f32 tensors and metadata to `path` atomically: a crash leaves the old file or none.
pub fn write_f32(
    path: &Path,
    tensors: &[(String, ArrayViewD<'_, f32>)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let file_error = |message: String| RnnError::File {
        path: path.to_path_buf(),
        message,
    };
    let views = tensors.iter().map(|(name, t)| {
        let data = match t.as_slice() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(t.iter().copied().collect()),
        };
        (
            name.as_str(),
            F32View {
                shape: t.shape().to_vec(),
                data,
            },
        )
    });
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| file_error(format!("cannot encode: {e}")))?;
    write_atomically(path, &bytes).map_err(|e| file_error(format!("cannot write: {e}")))
}

/// Temp file beside the target, fsync, rename over it; only a regular file or a new name is
/// replaced (`out_dir::check_replaceable`).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    crate::out_dir::check_replaceable(path)?;
    let prefix = format!(".{file_name}.tmp-");
    remove_stale_temp_files(dir, &prefix);
    let tmp = dir.join(format!("{prefix}{}", std::process::id()));
    // A name of its own: whatever is there (a leftover of this process id, a planted link) goes,
    // and the new file is created exclusively, never through a link.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Temp files that killed writers left beside the target (`PREFIX` + the writer's process id)
/// are removed; those of live processes are theirs to finish.
fn remove_stale_temp_files(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether a process with this id exists (on Unix; elsewhere every one is taken as alive).
pub fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = i32::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
        let sent = unsafe { libc::kill(pid, 0) } == 0;
        sent || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}
