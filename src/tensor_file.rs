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
        let bytes = fs::read(path).map_err(|e| file_error(format!("cannot read: {e}")))?;
        let parsed = SafeTensors::deserialize(&bytes)
            .map_err(|e| file_error(format!("not a valid safetensors file: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| file_error(format!("not a valid safetensors file: {e}")))?;
        let tensors = parsed
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let stored = StoredTensor {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    bytes: view.data().to_vec(),
                };
                (name, stored)
            })
            .collect();
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
                "metadata '{key}' = '{raw}' is not a valid {}",
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

    /// An F32 tensor (F64 is narrowed) by name.
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
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            other => return Err(self.error(format!("tensor '{name}' is {other:?}, expected F32"))),
        };
        self.shaped(name, &t.shape, values)
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

/// Temp file beside the target, fsync, rename over it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
