//! The models this process serves: loading them into engines and finding them by name.
//!
//! Every model in `serve` is loaded at start, each on its own thread, before the listener opens;
//! requests then resolve a name (id or alias) to a running engine. A name in the catalog whose
//! model is not loaded answers 503, an unknown name 404, and a model of the wrong kind 400.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use nfai_inference::embed::Embedder;
use nfai_inference::{EmbeddingConfig, EmbeddingEngine, GenerationConfig, GenerationEngine};
use nfai_models::bert::BertEmbedder;
use nfai_models::chat_template::ChatTemplate;

use crate::catalog::{Catalog, ModelEntry, ModelFormat, ModelKind};
use crate::config::EngineSettings;
use crate::error::ApiError;

/// A chat model with its running engine.
#[derive(Debug)]
pub struct ChatModel {
    pub entry: ModelEntry,
    pub engine: GenerationEngine,
    pub template: ChatTemplate,
    pub context_length: usize,
    pub vocab_size: usize,
}

/// An embedding model with its running engine.
pub struct EmbedModel {
    pub entry: ModelEntry,
    pub engine: EmbeddingEngine,
    pub embedder: Arc<BertEmbedder>,
}

impl std::fmt::Debug for EmbedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedModel").field("id", &self.entry.id).finish()
    }
}

#[derive(Debug, Clone)]
enum Loaded {
    Chat(Arc<ChatModel>),
    Embedding(Arc<EmbedModel>),
}

/// Loaded models by id, plus the catalog for name resolution.
#[derive(Debug)]
pub struct ModelRegistry {
    catalog: Catalog,
    loaded: HashMap<String, Loaded>,
}

struct BertAdapter(Arc<BertEmbedder>);

impl Embedder for BertAdapter {
    fn embed(&self, batch: &[Vec<u32>]) -> nfai_models::Result<Vec<Vec<f32>>> {
        self.0.embed(batch)
    }
}

impl ModelRegistry {
    /// Loads `serve` (model ids) from `model_dir`, in parallel.
    pub fn load(
        catalog: Catalog,
        serve: &[String],
        model_dir: &Path,
        settings: &EngineSettings,
    ) -> anyhow::Result<Self> {
        let entries: Vec<ModelEntry> = serve
            .iter()
            .map(|id| catalog.resolve(id).cloned().with_context(|| format!("unknown model {id:?}")))
            .collect::<anyhow::Result<_>>()?;
        let loaded = std::thread::scope(|s| {
            let handles: Vec<_> = entries
                .iter()
                .map(|e| s.spawn(move || load_one(e, model_dir, settings)))
                .collect();
            handles
                .into_iter()
                .zip(&entries)
                .map(|(h, e)| match h.join() {
                    Ok(r) => r.with_context(|| format!("loading model {:?}", e.id)).map(|l| (e.id.clone(), l)),
                    Err(_) => Err(anyhow::anyhow!("loading model {:?} panicked", e.id)),
                })
                .collect::<anyhow::Result<HashMap<_, _>>>()
        })?;
        Ok(Self { catalog, loaded })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn find(&self, name: &str) -> Result<(&ModelEntry, Option<&Loaded>), ApiError> {
        let entry = self.catalog.resolve(name).ok_or_else(|| ApiError::model_not_found(name))?;
        Ok((entry, self.loaded.get(&entry.id)))
    }

    /// The chat model called `name`.
    pub fn chat(&self, name: &str) -> Result<Arc<ChatModel>, ApiError> {
        match self.find(name)? {
            (_, Some(Loaded::Chat(m))) => Ok(m.clone()),
            (e, _) if e.kind != ModelKind::Chat => Err(ApiError::invalid(
                "model",
                format!("The model `{name}` is an embedding model; it cannot generate text."),
            )
            .with_code("model_not_supported")),
            (e, _) => Err(ApiError::unavailable(format!("The model `{}` is not loaded.", e.id))),
        }
    }

    /// The embedding model called `name`.
    pub fn embedding(&self, name: &str) -> Result<Arc<EmbedModel>, ApiError> {
        match self.find(name)? {
            (_, Some(Loaded::Embedding(m))) => Ok(m.clone()),
            (e, _) if e.kind != ModelKind::Embedding => Err(ApiError::invalid(
                "model",
                format!("The model `{name}` is a chat model; it cannot make embeddings."),
            )
            .with_code("model_not_supported")),
            (e, _) => Err(ApiError::unavailable(format!("The model `{}` is not loaded.", e.id))),
        }
    }

    /// Whether the model with this id is loaded and its engine alive.
    pub fn is_ready(&self, id: &str) -> bool {
        match self.loaded.get(id) {
            Some(Loaded::Chat(m)) => m.engine.is_alive(),
            Some(Loaded::Embedding(m)) => m.engine.is_alive(),
            None => false,
        }
    }

    /// Ids of the loaded models.
    pub fn loaded_ids(&self) -> impl Iterator<Item = &str> {
        self.loaded.keys().map(String::as_str)
    }

    /// Context length of a loaded chat model.
    pub fn context_length(&self, id: &str) -> Option<usize> {
        match self.loaded.get(id) {
            Some(Loaded::Chat(m)) => Some(m.context_length),
            Some(Loaded::Embedding(m)) => Some(m.embedder.max_tokens()),
            None => None,
        }
    }
}

fn device(entry: &ModelEntry) -> anyhow::Result<Device> {
    match entry.device.as_str() {
        "cpu" => Ok(Device::Cpu),
        other => anyhow::bail!(
            "model {:?}: device {other:?} needs a build with the `cuda` feature",
            entry.id
        ),
    }
}

fn load_one(entry: &ModelEntry, model_dir: &Path, s: &EngineSettings) -> anyhow::Result<Loaded> {
    let started = Instant::now();
    let path = entry.location(model_dir);
    let device = device(entry)?;
    let loaded = match (entry.kind, entry.format) {
        (ModelKind::Chat, ModelFormat::Gguf) => {
            let ctx = entry.context_length.unwrap_or(4096);
            let lm = nfai_models::loader::load_gguf_lm(&path, &device, ctx, entry.chat_template.as_deref())?;
            let info = lm.model.info().clone();
            let cfg = GenerationConfig {
                max_batch: entry.max_concurrent,
                queue_capacity: s.queue_capacity,
                prefill_chunk: s.prefill_chunk,
            };
            let engine = GenerationEngine::start(&entry.id, lm.model, lm.tokenizer, cfg)?;
            Loaded::Chat(Arc::new(ChatModel {
                entry: entry.clone(),
                engine,
                template: lm.chat_template,
                context_length: info.context_length,
                vocab_size: info.vocab_size,
            }))
        }
        (ModelKind::Embedding, ModelFormat::Bert) => {
            let embedder = Arc::new(BertEmbedder::load(&path, &device)?);
            let cfg = EmbeddingConfig {
                max_batch_tokens: s.embed_batch_tokens,
                max_batch_size: entry.max_concurrent,
                queue_capacity: s.queue_capacity,
            };
            let engine =
                EmbeddingEngine::start(&entry.id, Arc::new(BertAdapter(embedder.clone())), cfg)?;
            Loaded::Embedding(Arc::new(EmbedModel { entry: entry.clone(), engine, embedder }))
        }
        (kind, format) => anyhow::bail!(
            "model {:?}: a {kind:?} model in {format:?} format is not supported",
            entry.id
        ),
    };
    tracing::info!(model = %entry.id, ms = started.elapsed().as_millis() as u64, "model loaded");
    Ok(loaded)
}
