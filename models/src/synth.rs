//! Synthetic GGUF models: files of one of the architectures nfai runs (Gemma 3, Llama, Qwen2,
//! Qwen3; see [`SynthArch`]) with the dimensions of real models (a Llama-3-8B-shaped one at Q4_K
//! is 4.5 GB) or tiny ones, and random weights, streamed to disk block by block.
//!
//! They exist to measure loading, memory budgets, eviction and decode speed at realistic sizes
//! on machines that cannot download models, and (tiny shapes) to compare each architecture's
//! logits with llama.cpp's on the same file; their output is noise, so greedy-decoding tests
//! use the real small models. The weights are random quantized blocks with scales chosen so activations
//! stay finite through every layer; the vocabulary is SentencePiece-style (specials, the 256 byte
//! tokens, then unused fillers), so any text tokenizes.

use std::io::{BufWriter, Write};
use std::path::Path;

use candle_core::quantized::GgmlDType;

use crate::{ModelError, Result};

/// The architecture a synthetic file declares, which decides its tensors and metadata keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthArch {
    /// Sandwich norms, per-head Q/K norms, a sliding window (`gemma3`).
    Gemma3,
    /// Pre-norm attention and SwiGLU (`llama`).
    Llama,
    /// Llama with Q/K/V biases (`qwen2`).
    Qwen2,
    /// Llama with per-head Q/K norms (`qwen3`).
    Qwen3,
}

impl SynthArch {
    pub fn name(self) -> &'static str {
        match self {
            Self::Gemma3 => "gemma3",
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
        }
    }
}

/// The dimensions of a synthetic decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthShape {
    pub arch: SynthArch,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub context: usize,
    /// Whether `output.weight` is written (else the head shares the token embedding).
    pub untied_output: bool,
}

impl SynthShape {
    /// Preset shapes by name: `llama3-8b`, `llama3-3b`, `gemma3-1b`, `gemma3-270m` (Gemma 3
    /// files of those dimensions), `llama3-8b-llama` and `smollm2-135m` (Llama files), and the
    /// tiny `llama-tiny`, `qwen2-tiny`, `qwen3-tiny` (a few hundred kilobytes, for tests).
    pub fn preset(name: &str) -> Option<Self> {
        let s = |hidden, layers, heads, kv_heads, head_dim, ffn, vocab, untied| SynthShape {
            arch: SynthArch::Gemma3,
            hidden,
            layers,
            heads,
            kv_heads,
            head_dim,
            ffn,
            vocab,
            context: 8192,
            untied_output: untied,
        };
        Some(match name {
            "llama3-8b" => s(4096, 32, 32, 8, 128, 14336, 128_256, true),
            "llama3-3b" => s(3072, 28, 24, 8, 128, 8192, 128_256, false),
            "gemma3-1b" => s(1152, 26, 4, 1, 256, 6912, 262_144, false),
            "gemma3-270m" => s(640, 18, 4, 1, 256, 2048, 262_144, false),
            "llama3-8b-llama" => Self {
                arch: SynthArch::Llama,
                ..s(4096, 32, 32, 8, 128, 14336, 128_256, true)
            },
            "smollm2-135m" => Self {
                arch: SynthArch::Llama,
                ..s(576, 30, 9, 3, 64, 1536, 49_152, false)
            },
            "llama-tiny" | "qwen2-tiny" | "qwen3-tiny" => Self {
                arch: match name {
                    "llama-tiny" => SynthArch::Llama,
                    "qwen2-tiny" => SynthArch::Qwen2,
                    _ => SynthArch::Qwen3,
                },
                context: 512,
                ..s(128, 2, 4, 2, 32, 256, 512, name == "llama-tiny")
            },
            _ => return None,
        })
    }

    pub const PRESETS: &'static [&'static str] = &[
        "llama3-8b",
        "llama3-3b",
        "gemma3-1b",
        "gemma3-270m",
        "llama3-8b-llama",
        "smollm2-135m",
        "llama-tiny",
        "qwen2-tiny",
        "qwen3-tiny",
    ];

    /// Every tensor: name, GGUF dimensions (columns first) and type.
    /// A matrix whose rows do not split into `dtype`'s blocks (640-wide rows and the 256-value
    /// K-quant blocks, say) is written as Q8_0, as llama.cpp's quantizer falls back too.
    fn tensors(&self, dtype: GgmlDType) -> Vec<(String, Vec<usize>, GgmlDType)> {
        let (h, qd, kvd) = (
            self.hidden,
            self.heads * self.head_dim,
            self.kv_heads * self.head_dim,
        );
        let f32 = GgmlDType::F32;
        let mut t = vec![("token_embd.weight".to_string(), vec![h, self.vocab], dtype)];
        let arch = self.arch;
        let qk_norm = matches!(arch, SynthArch::Gemma3 | SynthArch::Qwen3);
        for i in 0..self.layers {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            t.extend([
                (n("attn_norm"), vec![h], f32),
                (n("attn_q"), vec![h, qd], dtype),
                (n("attn_k"), vec![h, kvd], dtype),
                (n("attn_v"), vec![h, kvd], dtype),
            ]);
            if arch == SynthArch::Qwen2 {
                let b = |s: &str| format!("blk.{i}.{s}.bias");
                t.extend([
                    (b("attn_q"), vec![qd], f32),
                    (b("attn_k"), vec![kvd], f32),
                    (b("attn_v"), vec![kvd], f32),
                ]);
            }
            if qk_norm {
                t.extend([
                    (n("attn_q_norm"), vec![self.head_dim], f32),
                    (n("attn_k_norm"), vec![self.head_dim], f32),
                ]);
            }
            t.push((n("attn_output"), vec![qd, h], dtype));
            if arch == SynthArch::Gemma3 {
                t.push((n("post_attention_norm"), vec![h], f32));
            }
            t.extend([
                (n("ffn_norm"), vec![h], f32),
                (n("ffn_gate"), vec![h, self.ffn], dtype),
                (n("ffn_up"), vec![h, self.ffn], dtype),
                (n("ffn_down"), vec![self.ffn, h], dtype),
            ]);
            if arch == SynthArch::Gemma3 {
                t.push((n("post_ffw_norm"), vec![h], f32));
            }
        }
        t.push(("output_norm.weight".into(), vec![h], f32));
        if self.untied_output {
            t.push(("output.weight".into(), vec![h, self.vocab], dtype));
        }
        for (_, dims, ty) in &mut t {
            if dims[0] % ty.block_size() != 0 {
                *ty = GgmlDType::Q8_0;
            }
        }
        t
    }

    /// Bytes of tensor data a file of this shape holds at `dtype`.
    pub fn weight_bytes(&self, dtype: GgmlDType) -> u64 {
        self.tensors(dtype)
            .iter()
            .map(|(_, dims, t)| tensor_bytes(dims, *t))
            .sum()
    }
}

fn tensor_bytes(dims: &[usize], t: GgmlDType) -> u64 {
    let n: usize = dims.iter().product();
    (n / t.block_size() * t.type_size()) as u64
}

/// The quantized types a synthetic file can use for its matrices.
pub fn parse_dtype(s: &str) -> Option<GgmlDType> {
    Some(match s.to_ascii_lowercase().as_str() {
        "q4_0" => GgmlDType::Q4_0,
        "q4_1" => GgmlDType::Q4_1,
        "q8_0" => GgmlDType::Q8_0,
        "q4_k" | "q4_k_m" => GgmlDType::Q4K,
        "q6_k" => GgmlDType::Q6K,
        _ => return None,
    })
}

/// A small, fast generator (SplitMix64): the same seed gives the same file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

fn f16_bytes(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_le_bytes()
}

/// One random block of `t` for a matrix with `cols` inputs: values of standard deviation about
/// `1 / sqrt(cols)` and mean near zero.
fn random_block(t: GgmlDType, cols: usize, rng: &mut Rng, out: &mut [u8]) {
    let std = 1.0 / (cols as f32).sqrt();
    rng.fill(out);
    match t {
        // d, then 32 signed quants in -128..127 (std ≈ 74).
        GgmlDType::Q8_0 => out[..2].copy_from_slice(&f16_bytes(std / 74.0)),
        // d, then nibbles 0..15 with 8 subtracted (std ≈ 4.6).
        GgmlDType::Q4_0 => out[..2].copy_from_slice(&f16_bytes(std / 4.6)),
        // d, m, then nibbles 0..15 (mean 7.5, std ≈ 4.6): m = -7.5·d centres them.
        GgmlDType::Q4_1 => {
            let d = std / 4.6;
            out[..2].copy_from_slice(&f16_bytes(d));
            out[2..4].copy_from_slice(&f16_bytes(-7.5 * d));
        }
        // d, dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles. The value is
        // d·sc·q − dmin·m with sc, m ≈ U(0, 63), q ≈ U(0, 15): mean d·31.5·7.5 − dmin·31.5,
        // zero when dmin = 7.5·d; std ≈ d·190.
        GgmlDType::Q4K => {
            let d = std / 190.0;
            out[..2].copy_from_slice(&f16_bytes(d));
            out[2..4].copy_from_slice(&f16_bytes(7.5 * d));
        }
        // 128 bytes of low nibbles, 64 of high bits, 16 signed 8-bit scales, then d; the 6-bit
        // quants minus 32 have std ≈ 18.5 and the scales ≈ 74.
        GgmlDType::Q6K => {
            let n = out.len();
            out[n - 2..].copy_from_slice(&f16_bytes(std / (18.5 * 74.0)));
        }
        _ => {}
    }
}

/// GGUF metadata values (the subset these files use).
enum Meta {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

fn put_str(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

impl Meta {
    fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        let arr = |w: &mut dyn Write, ty: u32, n: usize| -> std::io::Result<()> {
            w.write_all(&9u32.to_le_bytes())?;
            w.write_all(&ty.to_le_bytes())?;
            w.write_all(&(n as u64).to_le_bytes())
        };
        match self {
            Meta::U32(v) => {
                w.write_all(&4u32.to_le_bytes())?;
                w.write_all(&v.to_le_bytes())
            }
            Meta::F32(v) => {
                w.write_all(&6u32.to_le_bytes())?;
                w.write_all(&v.to_le_bytes())
            }
            Meta::Bool(v) => {
                w.write_all(&7u32.to_le_bytes())?;
                w.write_all(&[u8::from(*v)])
            }
            Meta::Str(s) => {
                w.write_all(&8u32.to_le_bytes())?;
                put_str(w, s)
            }
            Meta::Strs(v) => {
                arr(w, 8, v.len())?;
                v.iter().try_for_each(|s| put_str(w, s))
            }
            Meta::F32s(v) => {
                arr(w, 6, v.len())?;
                v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))
            }
            Meta::I32s(v) => {
                arr(w, 5, v.len())?;
                v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))
            }
        }
    }
}

/// Token 0 `<pad>`, 1 `<eos>`, 2 `<bos>`, 3 `<unk>`, then the 256 byte tokens, the turn
/// markers, and unused fillers up to `vocab`.
fn vocabulary(vocab: usize) -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut pieces: Vec<(String, i32)> = ["<pad>", "<eos>", "<bos>"]
        .iter()
        .map(|s| (s.to_string(), 3))
        .collect();
    pieces.push(("<unk>".into(), 2));
    pieces.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 6)));
    pieces.push(("<start_of_turn>".into(), 3));
    pieces.push(("<end_of_turn>".into(), 3));
    let mut i = pieces.len();
    while pieces.len() < vocab {
        pieces.push((format!("<unused{i}>"), 5));
        i += 1;
    }
    pieces.truncate(vocab);
    let scores = vec![0.0; pieces.len()];
    let (names, types) = pieces.into_iter().unzip();
    (names, scores, types)
}

fn metadata(shape: &SynthShape, name: &str) -> Vec<(String, Meta)> {
    let arch = shape.arch.name();
    let a = |k: &str| format!("{arch}.{k}");
    let u = |v: usize| Meta::U32(v as u32);
    let (tokens, scores, types) = vocabulary(shape.vocab);
    let (rope_base, eps) = match shape.arch {
        SynthArch::Gemma3 => (1_000_000.0, 1e-6),
        SynthArch::Llama => (10_000.0, 1e-5),
        SynthArch::Qwen2 | SynthArch::Qwen3 => (1_000_000.0, 1e-6),
    };
    let mut meta = vec![
        ("general.architecture".into(), Meta::Str(arch.into())),
        (
            "general.name".into(),
            Meta::Str(format!("synthetic {name}")),
        ),
        ("general.alignment".into(), Meta::U32(ALIGN as u32)),
        (a("context_length"), u(shape.context)),
        (a("embedding_length"), u(shape.hidden)),
        (a("block_count"), u(shape.layers)),
        (a("feed_forward_length"), u(shape.ffn)),
        (a("attention.head_count"), u(shape.heads)),
        (a("attention.head_count_kv"), u(shape.kv_heads)),
        (a("attention.key_length"), u(shape.head_dim)),
        (a("attention.value_length"), u(shape.head_dim)),
        (a("attention.layer_norm_rms_epsilon"), Meta::F32(eps)),
        (a("rope.freq_base"), Meta::F32(rope_base)),
        ("tokenizer.ggml.model".into(), Meta::Str("llama".into())),
        ("tokenizer.ggml.pre".into(), Meta::Str("default".into())),
        ("tokenizer.ggml.tokens".into(), Meta::Strs(tokens)),
        ("tokenizer.ggml.scores".into(), Meta::F32s(scores)),
        ("tokenizer.ggml.token_type".into(), Meta::I32s(types)),
        ("tokenizer.ggml.bos_token_id".into(), Meta::U32(2)),
        ("tokenizer.ggml.eos_token_id".into(), Meta::U32(1)),
        ("tokenizer.ggml.unknown_token_id".into(), Meta::U32(3)),
        ("tokenizer.ggml.padding_token_id".into(), Meta::U32(0)),
        ("tokenizer.ggml.add_bos_token".into(), Meta::Bool(true)),
        ("tokenizer.ggml.add_space_prefix".into(), Meta::Bool(false)),
    ];
    if shape.arch == SynthArch::Gemma3 {
        meta.push((a("attention.sliding_window"), u(512)));
    }
    meta
}

const ALIGN: usize = 32;

fn ggml_type_id(t: GgmlDType) -> u32 {
    match t {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q5_1 => 7,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q8_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 12,
        GgmlDType::Q5K => 13,
        GgmlDType::Q6K => 14,
        GgmlDType::Q8K => 15,
        GgmlDType::BF16 => 30,
    }
}

/// Writes a synthetic model of `shape` with matrices of `dtype` to `path`; `progress` is called
/// with (bytes written, bytes in all) after each tensor. Returns the file's size.
pub fn write_synthetic(
    path: &Path,
    name: &str,
    shape: &SynthShape,
    dtype: GgmlDType,
    seed: u64,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64> {
    let tensors = shape.tensors(dtype);
    for (tname, dims, t) in &tensors {
        if dims[0] % t.block_size() != 0 {
            return Err(ModelError::Unsupported(format!(
                "{tname}: rows of {} values do not split into {t:?} blocks of {}",
                dims[0],
                t.block_size()
            )));
        }
    }
    let io = |e| ModelError::io(path, e);
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 22, file);
    let meta = metadata(shape, name);
    let mut header = Vec::new();
    header.extend_from_slice(b"GGUF");
    header.extend_from_slice(&3u32.to_le_bytes());
    header.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    header.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    for (k, v) in &meta {
        put_str(&mut header, k).map_err(io)?;
        v.write(&mut header).map_err(io)?;
    }
    let mut offset = 0u64;
    for (tname, dims, t) in &tensors {
        put_str(&mut header, tname).map_err(io)?;
        header.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            header.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        header.extend_from_slice(&ggml_type_id(*t).to_le_bytes());
        header.extend_from_slice(&offset.to_le_bytes());
        offset += tensor_bytes(dims, *t).next_multiple_of(ALIGN as u64);
    }
    header.resize(header.len().next_multiple_of(ALIGN), 0);
    w.write_all(&header).map_err(io)?;

    let total = offset;
    let mut written = 0u64;
    let mut rng = Rng(seed);
    let mut block = Vec::new();
    for (tname, dims, t) in &tensors {
        let bytes = tensor_bytes(dims, *t);
        if *t == GgmlDType::F32 {
            // Norm weights near 1 (GGUF files hold Gemma's norms with the 1 already added),
            // biases near 0.
            let (centre, spread) = if tname.ends_with(".bias") {
                (0.0, 0.2)
            } else {
                (1.0, 0.05)
            };
            for _ in 0..dims[0] {
                let x = centre + spread * ((rng.next() % 1000) as f32 / 1000.0 - 0.5);
                w.write_all(&x.to_le_bytes()).map_err(io)?;
            }
        } else {
            let blocks = bytes as usize / t.type_size();
            block.resize(t.type_size(), 0);
            for _ in 0..blocks {
                random_block(*t, dims[0], &mut rng, &mut block);
                w.write_all(&block).map_err(io)?;
            }
        }
        let pad = bytes.next_multiple_of(ALIGN as u64) - bytes;
        w.write_all(&vec![0u8; pad as usize]).map_err(io)?;
        written += bytes + pad;
        progress(written, total);
    }
    w.flush().map_err(io)?;
    Ok(header.len() as u64 + total)
}

#[cfg(test)]
mod tests;
