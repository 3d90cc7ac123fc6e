//! Test helpers: a tiny Gemma-3-shaped GGUF with random weights and a small SentencePiece
//! vocabulary, written to a temporary file.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::{ModelError, Result};

/// Shape of the tiny model.
#[derive(Debug, Clone)]
pub(crate) struct TinySpec {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub window: usize,
    pub context: usize,
    /// Type of the matrices (norms are always F32).
    pub dtype: GgmlDType,
    /// `gemma3.attention.sliding_window_pattern`, when set.
    pub pattern: Option<u32>,
}

impl Default for TinySpec {
    fn default() -> Self {
        Self {
            layers: 6,
            hidden: 64,
            heads: 4,
            kv_heads: 2,
            head_dim: 32,
            ffn: 96,
            window: 4,
            context: 64,
            dtype: GgmlDType::Q8_0,
            pattern: None,
        }
    }
}

/// The tiny vocabulary: specials, 256 byte tokens, a few pieces, then unused fillers.
/// Returns (pieces, scores, types).
pub(crate) fn tiny_vocab() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut pieces: Vec<(String, f32, i32)> = vec![
        ("<pad>".into(), 0., 3),
        ("<eos>".into(), 0., 3),
        ("<bos>".into(), 0., 3),
        ("<unk>".into(), 0., 2),
    ];
    for b in 0..=255u8 {
        pieces.push((format!("<0x{b:02X}>"), 0., 6));
    }
    for (p, s) in [
        ("a", -10.),
        ("b", -10.),
        ("c", -10.),
        ("\u{2581}", -10.),
        ("ab", -3.),
        ("bc", -1.),
        ("abc", -2.),
        ("\u{2581}a", -4.),
    ] {
        pieces.push((p.into(), s, 1));
    }
    pieces.push(("\n\n".into(), 0., 4));
    pieces.push(("<start_of_turn>".into(), 0., 3));
    pieces.push(("<end_of_turn>".into(), 0., 3));
    while pieces.len() < 300 {
        pieces.push((format!("<unused{}>", pieces.len()), 0., 5));
    }
    let mut names = Vec::new();
    let mut scores = Vec::new();
    let mut types = Vec::new();
    for (p, s, t) in pieces {
        names.push(p);
        scores.push(s);
        types.push(t);
    }
    (names, scores, types)
}

pub(crate) const TINY_VOCAB: usize = 300;

fn randn(shape: (usize, usize), std: f64) -> Result<Tensor> {
    Ok(Tensor::randn(0f32, std as f32, shape, &Device::Cpu)?)
}

/// Writes the tiny model (with the tiny vocabulary's tokenizer metadata) to a temporary file.
pub(crate) fn write_tiny_gemma(spec: &TinySpec) -> Result<tempfile::NamedTempFile> {
    let h = spec.hidden;
    let qd = spec.heads * spec.head_dim;
    let kvd = spec.kv_heads * spec.head_dim;
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mat = |rows: usize, cols: usize| -> Result<QTensor> {
        let w = randn((rows, cols), 1.0 / (cols as f64).sqrt())?;
        Ok(QTensor::quantize(&w, spec.dtype)?)
    };
    let norm = |dim: usize| -> Result<QTensor> {
        let w = (randn((1, dim), 0.1)? + 1.0)?.flatten_all()?;
        Ok(QTensor::quantize(&w, GgmlDType::F32)?)
    };
    let embed = randn((TINY_VOCAB, h), 0.5)?;
    tensors.push((
        "token_embd.weight".into(),
        QTensor::quantize(&embed, spec.dtype)?,
    ));
    tensors.push(("output_norm.weight".into(), norm(h)?));
    for i in 0..spec.layers {
        let n = |t: &str| format!("blk.{i}.{t}.weight");
        tensors.push((n("attn_norm"), norm(h)?));
        tensors.push((n("attn_q"), mat(qd, h)?));
        tensors.push((n("attn_k"), mat(kvd, h)?));
        tensors.push((n("attn_v"), mat(kvd, h)?));
        tensors.push((n("attn_q_norm"), norm(spec.head_dim)?));
        tensors.push((n("attn_k_norm"), norm(spec.head_dim)?));
        tensors.push((n("attn_output"), mat(h, qd)?));
        tensors.push((n("post_attention_norm"), norm(h)?));
        tensors.push((n("ffn_norm"), norm(h)?));
        tensors.push((n("ffn_gate"), mat(spec.ffn, h)?));
        tensors.push((n("ffn_up"), mat(spec.ffn, h)?));
        tensors.push((n("ffn_down"), mat(h, spec.ffn)?));
        tensors.push((n("post_ffw_norm"), norm(h)?));
    }

    let (pieces, scores, types) = tiny_vocab();
    let u32v = |v: usize| Value::U32(v as u32);
    let mut meta: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("gemma3".into())),
        ("gemma3.context_length", u32v(spec.context)),
        ("gemma3.embedding_length", u32v(h)),
        ("gemma3.block_count", u32v(spec.layers)),
        ("gemma3.feed_forward_length", u32v(spec.ffn)),
        ("gemma3.attention.head_count", u32v(spec.heads)),
        ("gemma3.attention.head_count_kv", u32v(spec.kv_heads)),
        ("gemma3.attention.key_length", u32v(spec.head_dim)),
        ("gemma3.attention.value_length", u32v(spec.head_dim)),
        ("gemma3.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("gemma3.rope.freq_base", Value::F32(1_000_000.)),
        ("gemma3.attention.sliding_window", u32v(spec.window)),
        ("tokenizer.ggml.model", Value::String("llama".into())),
        ("tokenizer.ggml.pre", Value::String("default".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(pieces.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.scores",
            Value::Array(scores.into_iter().map(Value::F32).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(2)),
        ("tokenizer.ggml.eos_token_id", Value::U32(1)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(3)),
        ("tokenizer.ggml.padding_token_id", Value::U32(0)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
        ("tokenizer.ggml.add_space_prefix", Value::Bool(false)),
    ];
    if let Some(p) = spec.pattern {
        meta.push(("gemma3.attention.sliding_window_pattern", Value::U32(p)));
    }
    let file = tempfile::NamedTempFile::new()
        .map_err(|e| ModelError::io(std::path::Path::new("tempfile"), e))?;
    let out = file.reopen().map_err(|e| ModelError::io(file.path(), e))?;
    let mut w = std::io::BufWriter::new(out);
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut w, &meta_refs, &tensor_refs)?;
    std::io::Write::flush(&mut w).map_err(|e| ModelError::io(file.path(), e))?;
    Ok(file)
}

/// Largest absolute difference between two tensors of the same shape.
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// Index of the largest value of each row of `[rows, vocab]` logits.
pub(crate) fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(candle_core::D::Minus1)?.to_vec1::<u32>()?)
}
