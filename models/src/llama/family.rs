//! What distinguishes the Llama-shaped architectures nfai runs, by `general.architecture`:
//! Llama 2/3.x, Mistral and SmolLM2 files (`llama`), Qwen 2/2.5 (`qwen2`: biases on the
//! query, key and value projections, NeoX RoPE) and Qwen 3 (`qwen3`: per-head RMSNorm of
//! queries and keys before RoPE, NeoX RoPE). Everything else about them is shared.

/// One Llama-shaped architecture family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Llama,
    Qwen2,
    Qwen3,
}

impl Family {
    /// The `general.architecture` values this module runs.
    pub const ARCHITECTURES: &'static [&'static str] = &["llama", "qwen2", "qwen3"];

    pub fn from_architecture(arch: &str) -> Option<Self> {
        Some(match arch {
            "llama" => Self::Llama,
            "qwen2" => Self::Qwen2,
            "qwen3" => Self::Qwen3,
            _ => return None,
        })
    }

    pub fn architecture(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
        }
    }

    /// RoPE rotates value `i` with `i + dim/2` (NeoX) rather than `2i` with `2i + 1`: Llama's
    /// GGUF converter permutes the query and key weights for the latter, Qwen's does not.
    pub fn neox_rope(self) -> bool {
        matches!(self, Self::Qwen2 | Self::Qwen3)
    }

    /// Whether `blk.N.attn_{q,k,v}.bias` are required (Qwen2; optional for the others).
    pub fn qkv_bias(self) -> bool {
        self == Self::Qwen2
    }

    /// Whether `blk.N.attn_{q,k}_norm.weight` normalise each head before RoPE.
    pub fn qk_norm(self) -> bool {
        self == Self::Qwen3
    }

    /// RoPE base when the file gives none (llama.cpp's default).
    pub fn default_rope_base(self) -> f32 {
        10_000.0
    }
}
