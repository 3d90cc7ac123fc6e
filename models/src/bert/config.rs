//! The configuration files of a sentence-transformers BERT folder: `config.json`,
//! `1_Pooling/config.json` and `sentence_bert_config.json`.

use std::path::Path;

use serde::Deserialize;

use super::encoder::Activation;
use crate::{ModelError, Result};

/// The fields of a Hugging Face BERT `config.json` that the encoder uses.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_hidden_act() -> String {
    "gelu".to_owned()
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_type_vocab_size() -> usize {
    2
}

impl BertConfig {
    pub(super) fn validate(&self) -> Result<()> {
        if let Some(kind) = self.model_type.as_deref().filter(|k| *k != "bert") {
            return Err(ModelError::Unsupported(format!(
                "model_type {kind:?} (only \"bert\" is supported)"
            )));
        }
        if let Some(kind) = self
            .position_embedding_type
            .as_deref()
            .filter(|k| *k != "absolute")
        {
            return Err(ModelError::Unsupported(format!(
                "BERT position_embedding_type {kind:?} (only \"absolute\" is supported)"
            )));
        }
        Activation::parse(&self.hidden_act)?;
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(ModelError::Format(format!("BERT config: {name} is 0")));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(ModelError::Format(format!(
                "BERT config: hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        Ok(())
    }
}

/// How token vectors become one sentence vector (sentence-transformers' `Pooling` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The `[CLS]` token's vector.
    Cls,
    /// The mean over real tokens.
    Mean,
    /// The element-wise maximum over real tokens.
    Max,
    /// The sum over real tokens divided by the square root of their count.
    MeanSqrtLen,
}

#[derive(Deserialize)]
struct PoolingFile {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

impl Pooling {
    /// Reads `1_Pooling/config.json` under `dir`; mean pooling when the file is absent.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("1_Pooling").join("config.json");
        if !path.exists() {
            return Ok(Self::Mean);
        }
        let file: PoolingFile = read_json(&path)?;
        if file.pooling_mode_weightedmean_tokens || file.pooling_mode_lasttoken {
            return Err(ModelError::Unsupported(format!(
                "{}: weighted-mean and last-token pooling",
                path.display()
            )));
        }
        let modes = [
            (file.pooling_mode_cls_token, Self::Cls),
            (file.pooling_mode_mean_tokens, Self::Mean),
            (file.pooling_mode_max_tokens, Self::Max),
            (file.pooling_mode_mean_sqrt_len_tokens, Self::MeanSqrtLen),
        ];
        let mut on = modes.iter().filter(|(set, _)| *set).map(|(_, mode)| *mode);
        match (on.next(), on.next()) {
            (Some(mode), None) => Ok(mode),
            (None, _) => Err(ModelError::Format(format!(
                "{}: no pooling mode is set",
                path.display()
            ))),
            (Some(_), Some(_)) => Err(ModelError::Unsupported(format!(
                "{}: more than one pooling mode (concatenated pooling)",
                path.display()
            ))),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct SentenceBertFile {
    #[serde(default)]
    pub(super) max_seq_length: Option<usize>,
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::Format(format!("{}: {e}", path.display())))
}
