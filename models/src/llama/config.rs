//! Hyper-parameters of a Llama-shaped decoder read from GGUF metadata (`<arch>.*` keys), with
//! llama.cpp's defaults for what the file leaves out.

use super::family::Family;
use crate::gguf::GgufFile;
use crate::{ModelError, Result};

/// The shape and constants of a Llama-family decoder.
#[derive(Debug, Clone)]
pub struct LlamaConfig {
    pub family: Family,
    pub hidden: usize,
    pub layers: usize,
    pub ffn: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub eps: f32,
    pub rope_base: f32,
    /// Position scale: `1 / rope.scaling.factor` for linear scaling, else 1.
    pub rope_scale: f32,
    /// The context length the model was trained for.
    pub model_context: usize,
    /// `1 / sqrt(head_dim)`, applied to each attention score.
    pub attn_scale: f32,
}

impl LlamaConfig {
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let arch = g.architecture()?;
        let family = Family::from_architecture(arch).ok_or_else(|| {
            ModelError::Unsupported(format!("architecture `{arch}` is not Llama-shaped"))
        })?;
        let key = |k: &str| format!("{arch}.{k}");
        let hidden = g.usize(&key("embedding_length"))?;
        let layers = g.usize(&key("block_count"))?;
        let ffn = g.usize(&key("feed_forward_length"))?;
        let heads = g.usize(&key("attention.head_count"))?;
        let kv_heads = g
            .opt_usize(&key("attention.head_count_kv"))?
            .unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(ModelError::Format(format!(
                "{heads} attention heads cannot share {kv_heads} KV heads"
            )));
        }
        let head_dim = g
            .opt_usize(&key("attention.key_length"))?
            .unwrap_or(hidden / heads);
        let value_dim = g
            .opt_usize(&key("attention.value_length"))?
            .unwrap_or(head_dim);
        if value_dim != head_dim {
            return Err(ModelError::Unsupported(format!(
                "key length {head_dim} differs from value length {value_dim}"
            )));
        }
        if let Some(rot) = g.opt_usize(&key("rope.dimension_count"))?
            && rot != head_dim
        {
            return Err(ModelError::Unsupported(format!(
                "partial RoPE ({rot} of {head_dim} dimensions)"
            )));
        }
        let eps = g.f32(&key("attention.layer_norm_rms_epsilon"))?;
        let rope_base = g
            .opt_f32(&key("rope.freq_base"))?
            .unwrap_or(family.default_rope_base());
        let rope_scale = rope_scale(g, arch)?;
        let model_context = g.usize(&key("context_length"))?;
        Ok(Self {
            family,
            hidden,
            layers,
            ffn,
            heads,
            kv_heads,
            head_dim,
            eps,
            rope_base,
            rope_scale,
            model_context,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
        })
    }
}

/// Position scale: `1 / rope.scaling.factor` for linear scaling; 1 without scaling or for
/// Llama 3's scaling, which the file carries as the `rope_freqs.weight` tensor instead.
fn rope_scale(g: &GgufFile, arch: &str) -> Result<f32> {
    let kind = g.opt_string(&format!("{arch}.rope.scaling.type"))?;
    let factor = g.opt_f32(&format!("{arch}.rope.scaling.factor"))?;
    match (kind, factor) {
        (Some("none" | "llama3"), _) | (_, None) => Ok(1.0),
        (None | Some("linear"), Some(f)) if f > 0.0 => Ok(1.0 / f),
        (None | Some("linear"), Some(_)) => Ok(1.0),
        (Some(other), Some(_)) => Err(ModelError::Unsupported(format!(
            "RoPE scaling `{other}` for {arch}"
        ))),
    }
}
