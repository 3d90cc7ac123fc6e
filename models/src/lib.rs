//! Model formats, architectures, tokenizers, chat templates and memory estimates.
//!
//! Everything here is synchronous and free of HTTP: the engines in `nfai-inference` drive these
//! types from their own OS threads.
//!
//! Every `unsafe` block (SIMD kernels, memory maps, pointers shared by the compute pool) says
//! why it is sound in a `// SAFETY:` comment; clippy enforces it.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod bert;
pub mod chat_template;
pub mod device;
pub mod e5;
pub mod embedder;
pub mod error;
pub mod gemma3;
pub mod ggml_types;
pub mod gguf;
pub mod hugepages;
pub mod kernels;
pub mod layers;
pub mod llama;
pub mod lm;
pub mod loader;
pub mod memory;
pub mod synth;
pub mod tokenizer;
pub mod tool_prompt;

pub use bert::{BertConfig, BertEmbedder, Pooling};
pub use chat_template::{ChatMessage, ChatTemplate};
pub use e5::{E5Embedder, E5Info};
pub use embedder::{EmbedderFormat, InputKind, TextEmbedder, load_embedder};
pub use error::{ModelError, Result};
pub use gemma3::Gemma3;
pub use gguf::GgufFile;
pub use llama::Llama;
pub use lm::{BatchEntry, CausalLm, LmInfo, SeqKvCache};
pub use loader::{LoadedLm, load_gguf_lm};
pub use tokenizer::TextTokenizer;

/// The folder models are stored under: `NFAI_MODEL_DIR`, else `~/.cache/nfai/models`.
/// Each model lives in `<dir>/<model id>/`.
pub fn default_model_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("NFAI_MODEL_DIR").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ".".into());
    home.join(".cache").join("nfai").join("models")
}
