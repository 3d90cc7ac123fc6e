//! GGUF model files: the parsed header (metadata and tensor directory) plus the open file, with
//! typed metadata getters whose errors name the key, and tensor loading onto a device.
//!
//! The header is read once by [`GgufFile::open`]; tensors are read on demand by
//! [`GgufFile::tensor`], so a loader only pays for the tensors it asks for. The file is mapped
//! into memory, so a tensor is copied once, from the page cache into its own storage (reading
//! through `read` copied it three times); where mapping fails, tensors are read instead.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::Device;
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};
use candle_core::quantized::{QStorage, QTensor};

use crate::{ModelError, Result};

/// An open GGUF file and its parsed header.
pub struct GgufFile {
    path: PathBuf,
    content: Content,
    reader: Mutex<BufReader<File>>,
    map: Option<memmap2::Mmap>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("metadata_keys", &self.content.metadata.len())
            .field("tensors", &self.content.tensor_infos.len())
            .finish()
    }
}

impl GgufFile {
    /// Opens `path` and reads its header (metadata and tensor directory, not the tensor data).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let content = match Content::read(&mut reader) {
            Ok(content) => content,
            Err(e) => {
                // A tensor type candle does not know fails the parse; name it if that is why.
                crate::memory::check_tensor_types(path)?;
                return Err(ModelError::Format(format!("{}: {e}", path.display())));
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            content,
            // SAFETY: the mapping is read-only and lives no longer than this value; model files
            // are not modified while a model loads (the fetch writes a new file and renames
            // it into place, which leaves a mapped old file intact).
            map: unsafe { memmap2::Mmap::map(reader.get_ref()) }.ok(),
            reader: Mutex::new(reader),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every metadata entry, by key.
    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    /// `general.architecture` (`gemma3`, `llama`, …).
    pub fn architecture(&self) -> Result<&str> {
        self.string("general.architecture")
    }

    /// The metadata value under `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn required(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| {
            ModelError::Format(format!(
                "{}: metadata key `{key}` is missing",
                self.path.display()
            ))
        })
    }

    fn wrong_type(&self, key: &str, expected: &str, value: &Value) -> ModelError {
        ModelError::Format(format!(
            "{}: metadata key `{key}` should be {expected}, found {:?}",
            self.path.display(),
            value.value_type()
        ))
    }

    /// An unsigned integer of any width (a negative signed value is an error).
    pub fn u64(&self, key: &str) -> Result<u64> {
        let value = self.required(key)?;
        value_to_u64(value).ok_or_else(|| self.wrong_type(key, "an unsigned integer", value))
    }

    /// Like [`GgufFile::u64`], `None` when the key is absent.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.u64(key).map(Some),
        }
    }

    /// An unsigned integer that fits in `u32`.
    pub fn u32(&self, key: &str) -> Result<u32> {
        let v = self.u64(key)?;
        u32::try_from(v).map_err(|_| {
            ModelError::Format(format!(
                "{}: metadata key `{key}` = {v} does not fit in 32 bits",
                self.path.display()
            ))
        })
    }

    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.u32(key).map(Some),
        }
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        let v = self.u64(key)?;
        usize::try_from(v).map_err(|_| {
            ModelError::Format(format!(
                "{}: metadata key `{key}` = {v} is too large",
                self.path.display()
            ))
        })
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.usize(key).map(Some),
        }
    }

    /// A float (F32 or F64, narrowed to f32).
    pub fn f32(&self, key: &str) -> Result<f32> {
        let value = self.required(key)?;
        match value {
            Value::F32(v) => Ok(*v),
            Value::F64(v) => Ok(*v as f32),
            v => Err(self.wrong_type(key, "a float", v)),
        }
    }

    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.f32(key).map(Some),
        }
    }

    pub fn bool(&self, key: &str) -> Result<bool> {
        match self.required(key)? {
            Value::Bool(v) => Ok(*v),
            v => Err(self.wrong_type(key, "a bool", v)),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.bool(key).map(Some),
        }
    }

    pub fn string(&self, key: &str) -> Result<&str> {
        match self.required(key)? {
            Value::String(s) => Ok(s),
            v => Err(self.wrong_type(key, "a string", v)),
        }
    }

    pub fn opt_string(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.string(key).map(Some),
        }
    }

    fn array(&self, key: &str) -> Result<&[Value]> {
        match self.required(key)? {
            Value::Array(items) => Ok(items),
            v => Err(self.wrong_type(key, "an array", v)),
        }
    }

    /// An array of strings (the vocabulary, the merges).
    pub fn string_array(&self, key: &str) -> Result<Vec<&str>> {
        self.array(key)?
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.as_str()),
                v => Err(self.wrong_type(key, "an array of strings", v)),
            })
            .collect()
    }

    /// An array of floats (token scores).
    pub fn f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.array(key)?
            .iter()
            .map(|v| match v {
                Value::F32(x) => Ok(*x),
                Value::F64(x) => Ok(*x as f32),
                v => Err(self.wrong_type(key, "an array of floats", v)),
            })
            .collect()
    }

    /// An array of integers (token types), as i64.
    pub fn int_array(&self, key: &str) -> Result<Vec<i64>> {
        self.array(key)?
            .iter()
            .map(|v| value_to_i64(v).ok_or_else(|| self.wrong_type(key, "an array of integers", v)))
            .collect()
    }

    /// An array of bools (per-layer flags).
    pub fn bool_array(&self, key: &str) -> Result<Vec<bool>> {
        self.array(key)?
            .iter()
            .map(|v| match v {
                Value::Bool(b) => Ok(*b),
                v => Err(self.wrong_type(key, "an array of bools", v)),
            })
            .collect()
    }

    /// The directory entry of tensor `name`, if present.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.content.tensor_infos.get(name)
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Names of every tensor, in no particular order.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.content.tensor_infos.keys().map(String::as_str)
    }

    /// Dimensions of tensor `name` as candle orders them (rows first: `[out, in]` for a weight).
    pub fn tensor_dims(&self, name: &str) -> Result<&[usize]> {
        self.tensor_info(name)
            .map(|info| info.shape.dims())
            .ok_or_else(|| self.missing_tensor(name))
    }

    fn missing_tensor(&self, name: &str) -> ModelError {
        ModelError::Format(format!(
            "{}: tensor `{name}` is missing",
            self.path.display()
        ))
    }

    /// Reads tensor `name` onto `device`, in the type it is stored in.
    pub fn tensor(&self, name: &str, device: &Device) -> Result<QTensor> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| self.missing_tensor(name))?;
        if let Some(bytes) = self.mapped(info) {
            let on_huge_pages = device
                .is_cpu()
                .then(|| crate::hugepages::cpu_qstorage(bytes, info.ggml_dtype))
                .flatten();
            let storage = match on_huge_pages {
                Some(storage) => Ok(storage),
                None => QStorage::from_data(Cow::Borrowed(bytes), device, info.ggml_dtype),
            };
            return storage
                .and_then(|s| QTensor::new(s, info.shape.clone()))
                .map_err(|e| {
                    ModelError::Format(format!("{}: tensor `{name}`: {e}", self.path.display()))
                });
        }
        let mut reader = self
            .reader
            .lock()
            .map_err(|_| ModelError::Format("GGUF reader lock poisoned".into()))?;
        info.read(&mut *reader, self.content.tensor_data_offset, device)
            .map_err(|e| {
                ModelError::Format(format!("{}: tensor `{name}`: {e}", self.path.display()))
            })
    }

    /// The tensor's bytes in the mapped file, when the file is mapped, they lie within it, and
    /// they are aligned for the tensor's blocks (GGUF aligns tensor data to 32 bytes).
    fn mapped(&self, info: &TensorInfo) -> Option<&[u8]> {
        let map = self.map.as_ref()?;
        let t = info.ggml_dtype;
        let elems = info.shape.elem_count();
        if !elems.is_multiple_of(t.block_size()) {
            return None;
        }
        let len = elems / t.block_size() * t.type_size();
        let start =
            usize::try_from(self.content.tensor_data_offset.checked_add(info.offset)?).ok()?;
        let bytes = map.get(start..start.checked_add(len)?)?;
        (bytes.as_ptr() as usize)
            .is_multiple_of(32)
            .then_some(bytes)
    }

    /// Bytes of all tensors as stored in the file (quantised sizes), for memory estimates.
    pub fn tensor_bytes(&self) -> u64 {
        self.content
            .tensor_infos
            .values()
            .map(|info| {
                let blocks = info.shape.elem_count() / info.ggml_dtype.block_size();
                (blocks * info.ggml_dtype.type_size()) as u64
            })
            .sum()
    }
}

fn value_to_u64(value: &Value) -> Option<u64> {
    match value {
        Value::U8(v) => Some(u64::from(*v)),
        Value::U16(v) => Some(u64::from(*v)),
        Value::U32(v) => Some(u64::from(*v)),
        Value::U64(v) => Some(*v),
        Value::I8(v) => u64::try_from(*v).ok(),
        Value::I16(v) => u64::try_from(*v).ok(),
        Value::I32(v) => u64::try_from(*v).ok(),
        Value::I64(v) => u64::try_from(*v).ok(),
        _ => None,
    }
}

fn value_to_i64(value: &Value) -> Option<i64> {
    match value {
        Value::U8(v) => Some(i64::from(*v)),
        Value::U16(v) => Some(i64::from(*v)),
        Value::U32(v) => Some(i64::from(*v)),
        Value::U64(v) => i64::try_from(*v).ok(),
        Value::I8(v) => Some(i64::from(*v)),
        Value::I16(v) => Some(i64::from(*v)),
        Value::I32(v) => Some(i64::from(*v)),
        Value::I64(v) => Some(*v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;
    use candle_core::quantized::GgmlDType;

    #[test]
    fn typed_getters_and_tensor_roundtrip() -> Result<()> {
        let dev = Device::Cpu;
        let t = Tensor::arange(0f32, 64., &dev)?.reshape((2, 32))?;
        let q = QTensor::quantize(&t, GgmlDType::Q8_0)?;
        let arch = Value::String("test".into());
        let n = Value::U32(7);
        let eps = Value::F32(1e-6);
        let arr = Value::Array(vec![Value::String("a".into()), Value::String("b".into())]);
        let file =
            tempfile::NamedTempFile::new().map_err(|e| ModelError::io(Path::new("tmp"), e))?;
        {
            let mut w =
                std::io::BufWriter::new(file.reopen().map_err(|e| ModelError::io(file.path(), e))?);
            candle_core::quantized::gguf_file::write(
                &mut w,
                &[
                    ("general.architecture", &arch),
                    ("test.n", &n),
                    ("test.eps", &eps),
                    ("test.arr", &arr),
                ],
                &[("w", &q)],
            )?;
        }
        let g = GgufFile::open(file.path())?;
        assert_eq!(g.architecture()?, "test");
        assert_eq!(g.u32("test.n")?, 7);
        assert_eq!(g.usize("test.n")?, 7);
        assert_eq!(g.opt_u32("test.missing")?, None);
        assert!((g.f32("test.eps")? - 1e-6).abs() < 1e-12);
        assert_eq!(g.string_array("test.arr")?, vec!["a", "b"]);
        let err = g
            .u32("test.missing")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("test.missing"), "{err}");
        let err = g
            .string("test.n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("test.n"), "{err}");
        assert_eq!(g.tensor_bytes(), q.storage_size_in_bytes() as u64);
        let back = g.tensor("w", &dev)?.dequantize(&dev)?;
        let diff = (back - &t)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 0.5);
        assert!(g.tensor("nope", &dev).is_err());
        Ok(())
    }
}
