//! Native models behind the model cache: the loader that turns catalog entries into running
//! engines, and name resolution to leases.
//!
//! A request resolves a name (id or alias) to a catalog entry, then acquires a lease from the
//! cache, which loads the model once however many requests wait, evicting idle models to fit
//! the device budget. The lease keeps the model resident while the request runs. An unknown
//! name answers 404 and a model of the wrong kind 400.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use nfai_cache::{
    AcquireOptions, CacheConfig, DeviceId, KeepAlive, Lease, Loader, ModelCache, ModelSpec,
};
use nfai_inference::embed::Embedder;
use nfai_inference::{EmbeddingConfig, EmbeddingEngine, GenerationConfig, GenerationEngine};
use nfai_models::TextEmbedder;
use nfai_models::chat_template::ChatTemplate;
use nfai_models::memory;

use crate::backend::error::BackendError;
use crate::catalog::{Catalog, ModelEntry, ModelFormat, ModelKind};
use crate::config::EngineSettings;
use crate::validate::{FieldError, FieldErrorKind};

/// Context length of a chat model whose catalog entry sets none.
pub const DEFAULT_CONTEXT: usize = 4096;

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
    pub embedder: Arc<dyn TextEmbedder>,
}

impl std::fmt::Debug for EmbedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedModel")
            .field("id", &self.entry.id)
            .finish()
    }
}

/// What the cache holds for a native model. Dropping it stops the model's engine thread, which
/// frees the weights.
#[derive(Debug)]
pub enum NativeModel {
    Chat(Arc<ChatModel>),
    Embedding(Arc<EmbedModel>),
}

/// A lease on a chat model: derefs to the model; dropping it releases the lease.
#[derive(Debug)]
pub struct ChatLease {
    model: Arc<ChatModel>,
    _lease: Lease<NativeModel>,
}

impl Deref for ChatLease {
    type Target = ChatModel;
    fn deref(&self) -> &ChatModel {
        &self.model
    }
}

/// A lease on an embedding model.
#[derive(Debug)]
pub struct EmbedLease {
    model: Arc<EmbedModel>,
    _lease: Lease<NativeModel>,
}

impl Deref for EmbedLease {
    type Target = EmbedModel;
    fn deref(&self) -> &EmbedModel {
        &self.model
    }
}

/// Loads catalog entries into engines for the cache.
#[derive(Debug)]
pub struct NativeLoader {
    catalog: Catalog,
    model_dir: PathBuf,
    settings: EngineSettings,
    /// The engines of the loaded models, by id, without keeping them loaded.
    engines: Mutex<HashMap<String, EngineRef>>,
}

/// A loaded model's engine, held weakly (the cache owns the model).
#[derive(Debug)]
enum EngineRef {
    Chat(Weak<ChatModel>),
    Embedding(Weak<EmbedModel>),
}

impl EngineRef {
    /// `None` once the model is unloaded; else whether its engine thread still runs.
    fn alive(&self) -> Option<bool> {
        match self {
            EngineRef::Chat(m) => m.upgrade().map(|m| m.engine.is_alive()),
            EngineRef::Embedding(m) => m.upgrade().map(|m| m.engine.is_alive()),
        }
    }
}

/// Bytes per KV-cache value on the entry's device.
fn kv_bytes(e: &ModelEntry) -> u64 {
    memory::kv_element_bytes(matches!(e.device.parse::<DeviceId>(), Ok(DeviceId::Cpu)))
}

impl NativeLoader {
    fn entry(&self, id: &str) -> Result<&ModelEntry, String> {
        self.catalog
            .resolve(id)
            .ok_or_else(|| format!("model {id:?} is not in the catalog"))
    }

    /// Bytes of KV cache a chat model may grow to (all sequences at full context).
    fn kv_reserve(&self, e: &ModelEntry) -> u64 {
        if e.format != ModelFormat::Gguf {
            return 0;
        }
        let ctx = e.context_length.unwrap_or(DEFAULT_CONTEXT);
        memory::estimate_gguf(
            &e.location(&self.model_dir),
            ctx,
            e.max_concurrent,
            kv_bytes(e),
        )
        .map(|est| est.kv_bytes + self.settings.prefix_cache_bytes)
        .unwrap_or(0)
    }
}

impl Loader for NativeLoader {
    type Model = NativeModel;

    fn estimate(&self, spec: &ModelSpec) -> Result<u64, String> {
        let e = self.entry(&spec.id)?;
        let path = e.location(&self.model_dir);
        match e.format {
            ModelFormat::Gguf => {
                let ctx = e.context_length.unwrap_or(DEFAULT_CONTEXT);
                memory::estimate_gguf(&path, ctx, e.max_concurrent, kv_bytes(e))
                    .map(|est| est.total_bytes + self.settings.prefix_cache_bytes)
            }
            ModelFormat::Bert => memory::estimate_bert(&path),
            ModelFormat::E5 => memory::estimate_e5(&path),
        }
        .map_err(|err| err.to_string())
    }

    /// The reported size is what the device's memory grew by while loading (the process's RSS
    /// on the host, the driver's used memory on a GPU) plus the KV cache the model may still
    /// grow to, so the budget keeps room for it.
    fn load(&self, spec: &ModelSpec) -> Result<(NativeModel, u64), String> {
        let e = self.entry(&spec.id)?;
        let device = nfai_models::device::by_name(&e.device).map_err(|err| err.to_string())?;
        let gpu_free = || {
            nfai_models::device::gpu_memory(&device)
                .ok()
                .flatten()
                .map(|(free, _)| free)
        };
        let (rss_before, gpu_before) = (resident_bytes(), gpu_free());
        let model =
            load_one(e, &self.model_dir, &self.settings).map_err(|err| format!("{err:#}"))?;
        let engine = match &model {
            NativeModel::Chat(m) => EngineRef::Chat(Arc::downgrade(m)),
            NativeModel::Embedding(m) => EngineRef::Embedding(Arc::downgrade(m)),
        };
        if let Ok(mut engines) = self.engines.lock() {
            engines.insert(e.id.clone(), engine);
        }
        let grown = match (gpu_before, gpu_free()) {
            (Some(before), Some(after)) => before.saturating_sub(after),
            _ => resident_bytes().saturating_sub(rss_before),
        };
        Ok((model, grown + self.kv_reserve(e)))
    }
}

/// Resident set size of this process (Linux), 0 elsewhere.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The catalog, and the cache that keeps its native models resident.
pub struct ModelRegistry {
    catalog: Catalog,
    model_dir: PathBuf,
    cache: ModelCache<NativeLoader>,
    loader: Arc<NativeLoader>,
}

impl std::fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelRegistry")
            .field("models", &self.catalog.entries().len())
            .finish()
    }
}

impl ModelRegistry {
    /// Starts the cache for the `serve` models (needs a tokio runtime). Nothing is loaded yet.
    pub fn start(
        catalog: Catalog,
        serve: &[String],
        model_dir: &Path,
        settings: EngineSettings,
        config: CacheConfig,
    ) -> anyhow::Result<Self> {
        let mut specs = Vec::with_capacity(serve.len());
        for id in serve {
            let e = catalog
                .resolve(id)
                .ok_or_else(|| anyhow::anyhow!("unknown model {id:?}"))?;
            let device = e
                .device
                .parse::<DeviceId>()
                .map_err(|m| anyhow::anyhow!(m))?;
            let mut spec = ModelSpec::new(e.id.clone(), device);
            spec.keep_alive = e.keep_alive();
            spec.pinned = e.pinned;
            specs.push(spec);
        }
        let loader = Arc::new(NativeLoader {
            catalog: catalog.clone(),
            model_dir: model_dir.to_path_buf(),
            settings,
            engines: Mutex::new(HashMap::new()),
        });
        let cache = ModelCache::start(loader.clone(), specs, config);
        Ok(Self {
            catalog,
            model_dir: model_dir.to_path_buf(),
            cache,
            loader,
        })
    }

    /// The folder holding one sub-folder per model.
    pub fn model_dir(&self) -> &Path {
        &self.model_dir
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn cache(&self) -> &ModelCache<NativeLoader> {
        &self.cache
    }

    /// Whether the engine of model `id` runs: `None` when the model is not loaded.
    pub fn engine_alive(&self, id: &str) -> Option<bool> {
        let engines = self.loader.engines.lock().ok()?;
        engines.get(id).and_then(EngineRef::alive)
    }

    /// The loaded chat models, by id, for their engines' counters (`/metrics`).
    pub fn chat_engines(&self) -> Vec<(String, Arc<ChatModel>)> {
        let Ok(engines) = self.loader.engines.lock() else {
            return Vec::new();
        };
        let mut out: Vec<_> = engines
            .iter()
            .filter_map(|(id, e)| match e {
                EngineRef::Chat(m) => m.upgrade().map(|m| (id.clone(), m)),
                EngineRef::Embedding(_) => None,
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    async fn acquire(
        &self,
        name: &str,
        keep_alive: Option<KeepAlive>,
    ) -> Result<(&ModelEntry, Lease<NativeModel>), BackendError> {
        let entry = self
            .catalog
            .resolve(name)
            .ok_or_else(|| BackendError::ModelNotFound(name.to_string()))?;
        if !self.cache.contains(&entry.id) {
            return Err(BackendError::NotServed(entry.id.clone()));
        }
        let lease = self
            .cache
            .acquire(&entry.id, AcquireOptions { keep_alive })
            .await?;
        Ok((entry, lease))
    }

    /// A lease on the chat model called `name`.
    pub async fn chat(
        &self,
        name: &str,
        keep_alive: Option<KeepAlive>,
    ) -> Result<ChatLease, BackendError> {
        check_kind(&self.catalog, name, ModelKind::Chat)?;
        let (_, lease) = self.acquire(name, keep_alive).await?;
        match &*lease {
            NativeModel::Chat(m) => Ok(ChatLease {
                model: m.clone(),
                _lease: lease,
            }),
            NativeModel::Embedding(_) => Err(wrong_kind(name, ModelKind::Chat)),
        }
    }

    /// A lease on the embedding model called `name`.
    pub async fn embedding(
        &self,
        name: &str,
        keep_alive: Option<KeepAlive>,
    ) -> Result<EmbedLease, BackendError> {
        check_kind(&self.catalog, name, ModelKind::Embedding)?;
        let (_, lease) = self.acquire(name, keep_alive).await?;
        match &*lease {
            NativeModel::Embedding(m) => Ok(EmbedLease {
                model: m.clone(),
                _lease: lease,
            }),
            NativeModel::Chat(_) => Err(wrong_kind(name, ModelKind::Embedding)),
        }
    }
}

fn check_kind(catalog: &Catalog, name: &str, want: ModelKind) -> Result<(), BackendError> {
    match catalog.resolve(name) {
        None => Err(BackendError::ModelNotFound(name.to_string())),
        Some(e) if e.kind != want => Err(wrong_kind(name, want)),
        Some(_) => Ok(()),
    }
}

fn wrong_kind(name: &str, want: ModelKind) -> BackendError {
    let msg = match want {
        ModelKind::Chat => {
            format!("The model `{name}` is an embedding model; it cannot generate text.")
        }
        ModelKind::Embedding => {
            format!("The model `{name}` is a chat model; it cannot make embeddings.")
        }
    };
    FieldError::new(FieldErrorKind::WrongModelKind, "model", msg).into()
}

fn load_one(
    entry: &ModelEntry,
    model_dir: &Path,
    s: &EngineSettings,
) -> anyhow::Result<NativeModel> {
    let started = Instant::now();
    let path = entry.location(model_dir);
    let device = nfai_models::device::by_name(&entry.device)?;
    let loaded = match (entry.kind, entry.format) {
        (ModelKind::Chat, ModelFormat::Gguf) => {
            let ctx = entry.context_length.unwrap_or(DEFAULT_CONTEXT);
            let lm = nfai_models::loader::load_gguf_lm(
                &path,
                &device,
                ctx,
                entry.chat_template.as_deref(),
            )?;
            let info = lm.model.info().clone();
            let cfg = GenerationConfig {
                max_batch: entry.max_concurrent,
                queue_capacity: s.queue_capacity,
                prefill_chunk: s.prefill_chunk,
                prefix_cache_bytes: usize::try_from(s.prefix_cache_bytes).unwrap_or(usize::MAX),
                max_queue_wait: (s.max_queue_wait_ms > 0)
                    .then(|| std::time::Duration::from_millis(s.max_queue_wait_ms)),
            };
            let engine = GenerationEngine::start(&entry.id, lm.model, lm.tokenizer, cfg)?;
            NativeModel::Chat(Arc::new(ChatModel {
                entry: entry.clone(),
                engine,
                template: lm.chat_template,
                context_length: info.context_length,
                vocab_size: info.vocab_size,
            }))
        }
        (ModelKind::Embedding, format) if format.embedder().is_some() => {
            let layout = format
                .embedder()
                .ok_or_else(|| anyhow::anyhow!("{format:?} is not an embedding format"))?;
            let embedder = nfai_models::load_embedder(layout, &path, &device)?;
            let cfg = EmbeddingConfig {
                max_batch_tokens: s.embed_batch_tokens,
                max_batch_size: entry.max_concurrent,
                queue_capacity: s.queue_capacity,
            };
            let driver: Arc<dyn Embedder> = Arc::new(embedder.clone());
            let engine = EmbeddingEngine::start(&entry.id, driver, cfg)?;
            NativeModel::Embedding(Arc::new(EmbedModel {
                entry: entry.clone(),
                engine,
                embedder,
            }))
        }
        (kind, format) => anyhow::bail!(
            "model {:?}: a {kind:?} model in {format:?} format is not supported",
            entry.id
        ),
    };
    tracing::info!(model = %entry.id, ms = started.elapsed().as_millis() as u64, "model loaded");
    Ok(loaded)
}
