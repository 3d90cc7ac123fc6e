//! Gemma 3 hyper-parameters read from GGUF metadata (`gemma3.*` keys), with llama.cpp's
//! defaults for what the file leaves out.

use crate::gguf::GgufFile;
use crate::{ModelError, Result};

/// Every `n`-th layer (1-based) attends globally; the others use the sliding window.
const DEFAULT_SWA_PATTERN: usize = 6;
/// RoPE base of the sliding-window layers when the file does not give one.
const DEFAULT_LOCAL_ROPE_BASE: f32 = 10_000.0;

/// The shape and constants of a Gemma 3 decoder.
#[derive(Debug, Clone)]
pub struct Gemma3Config {
    pub hidden: usize,
    pub layers: usize,
    pub ffn: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub eps: f32,
    /// RoPE base and position scale of the global layers.
    pub rope_base_global: f32,
    pub rope_scale_global: f32,
    /// RoPE base of the sliding-window layers (position scale 1).
    pub rope_base_local: f32,
    /// Keys a sliding-window layer sees: those with `key > query - sliding_window`.
    pub sliding_window: Option<usize>,
    /// Per layer: whether it uses the sliding window.
    pub local_layers: Vec<bool>,
    /// Factor applied to the queries before `q · kᵀ`.
    pub attn_scale: f64,
    /// The context length the model was trained for.
    pub model_context: usize,
    /// `logits = cap · tanh(logits / cap)` when set (`final_logit_softcapping`).
    pub final_logit_softcap: Option<f32>,
}

impl Gemma3Config {
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let arch = g.architecture()?;
        let key = |k: &str| format!("{arch}.{k}");
        let hidden = g.usize(&key("embedding_length"))?;
        let layers = g.usize(&key("block_count"))?;
        let ffn = g.usize(&key("feed_forward_length"))?;
        let heads = g.usize(&key("attention.head_count"))?;
        let kv_heads = g
            .opt_usize(&key("attention.head_count_kv"))?
            .unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
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
        let rope_base_global = g.opt_f32(&key("rope.freq_base"))?.unwrap_or(1_000_000.0);
        let rope_base_local = g
            .opt_f32(&key("rope.freq_base_swa"))?
            .unwrap_or(DEFAULT_LOCAL_ROPE_BASE);
        let rope_scale_global = rope_scale(g, arch)?;
        let sliding_window = g.opt_usize(&key("attention.sliding_window"))?;
        let local_layers = match sliding_window {
            None => vec![false; layers],
            Some(_) => local_layer_flags(g, &key("attention.sliding_window_pattern"), layers)?,
        };
        let model_context = g.usize(&key("context_length"))?;
        let attn_scale = attention_scale(g, arch, hidden, heads, head_dim, layers)?;
        let final_logit_softcap = g
            .opt_f32(&key("final_logit_softcapping"))?
            .filter(|c| *c > 0.0);
        Ok(Self {
            hidden,
            layers,
            ffn,
            heads,
            kv_heads,
            head_dim,
            eps,
            rope_base_global,
            rope_scale_global,
            rope_base_local,
            sliding_window,
            local_layers,
            attn_scale,
            model_context,
            final_logit_softcap,
        })
    }
}

/// Position scale of the global layers: `1 / rope.scaling.factor` for linear scaling.
fn rope_scale(g: &GgufFile, arch: &str) -> Result<f32> {
    let kind = g.opt_string(&format!("{arch}.rope.scaling.type"))?;
    let factor = g.opt_f32(&format!("{arch}.rope.scaling.factor"))?;
    match (kind, factor) {
        (Some("none"), _) | (_, None) => Ok(1.0),
        (None | Some("linear"), Some(f)) if f > 0.0 => Ok(1.0 / f),
        (None | Some("linear"), Some(_)) => Ok(1.0),
        (Some(other), Some(_)) => Err(ModelError::Unsupported(format!(
            "RoPE scaling `{other}` for {arch}"
        ))),
    }
}

/// Which layers use the sliding window: the per-layer bool array or the integer period found
/// under `key`, else every layer but each 6th.
fn local_layer_flags(g: &GgufFile, key: &str, layers: usize) -> Result<Vec<bool>> {
    use candle_core::quantized::gguf_file::Value;
    match g.get(key) {
        Some(Value::Array(_)) => {
            let flags = g.bool_array(key)?;
            if flags.len() != layers {
                return Err(ModelError::Format(format!(
                    "`{key}` has {} entries for {layers} layers",
                    flags.len()
                )));
            }
            Ok(flags)
        }
        Some(_) => {
            let period = g.usize(key)?;
            Ok((0..layers)
                .map(|i| period == 0 || (i + 1) % period != 0)
                .collect())
        }
        None => Ok((0..layers)
            .map(|i| (i + 1) % DEFAULT_SWA_PATTERN != 0)
            .collect()),
    }
}

/// The query scale: `attention.scale` or `1/sqrt(query_pre_attn_scalar)` when the file gives
/// one, else llama.cpp's rule (`1/sqrt(hidden/heads)` for the 27B shape, `1/sqrt(head_dim)`).
fn attention_scale(
    g: &GgufFile,
    arch: &str,
    hidden: usize,
    heads: usize,
    head_dim: usize,
    layers: usize,
) -> Result<f64> {
    if let Some(scale) = g.opt_f32(&format!("{arch}.attention.scale"))? {
        return Ok(f64::from(scale));
    }
    if let Some(q) = g.get(&format!("{arch}.attention.query_pre_attn_scalar")) {
        let q = match q {
            candle_core::quantized::gguf_file::Value::F32(v) => f64::from(*v),
            candle_core::quantized::gguf_file::Value::F64(v) => *v,
            _ => g.u64(&format!("{arch}.attention.query_pre_attn_scalar"))? as f64,
        };
        if q > 0.0 {
            return Ok(1.0 / q.sqrt());
        }
    }
    let is_27b = layers == 62 && hidden == 5376;
    let d = if is_27b { hidden / heads } else { head_dim };
    Ok(1.0 / (d as f64).sqrt())
}
