//! One embedded collection: a qdrant-edge shard in its own directory plus nfai's metadata.
//!
//! Every method is synchronous and may block (disk I/O, index builds); callers run them on
//! blocking threads. qdrant-edge's `flush` panics when it finds its WAL or segment lock taken,
//! so the writers are serialised by two gates, always taken in the order `optimize` then
//! `write`: upserts and deletes take `write`, `optimize` takes `optimize`, and `flush` takes
//! both. Searches and counts take neither and run concurrently with all of them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use crate::edge::config::EdgeStoreOptions;
use crate::edge::meta::CollectionMeta;
use crate::error::{AttributeKind, Result, RetrievalError};
use crate::filter::{Cond, attribute_path, lower, to_qdrant_json};
use crate::types::{
    Chunk, ChunkPayload, CollectionInfo, CollectionSpec, FILE_ID_KEY, LANG_KEY, SampledChunk,
    SearchHit, SearchQuery, check_search, check_vector, search_cond,
};
use qdrant_edge::{
    CountRequest, CreateIndex, DEFAULT_VECTOR_NAME, EdgeShard, FieldIndexOperations, Filter,
    JsonPath, OperationError, PayloadFieldSchema, PayloadSchemaType, PointId,
    PointInsertOperations, PointOperations, PointStruct, QueryEnum, ScrollRequest, SearchRequest,
    UpdateOperation, VectorInternal, VectorStructInternal, WithPayloadInterface, WithVector,
};
use serde_json::{Map, Value};

/// A search result with its payload as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RawHit {
    pub id: u64,
    pub score: f32,
    pub payload: Map<String, Value>,
}

/// A stored point: its id, vector and the payload fields asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPoint {
    pub id: u64,
    pub vector: Vec<f32>,
    pub payload: Map<String, Value>,
}

/// An open embedded collection.
pub struct EdgeCollection {
    name: String,
    dir: PathBuf,
    shard: EdgeShard,
    meta: RwLock<CollectionMeta>,
    options: EdgeStoreOptions,
    optimize_gate: Mutex<()>,
    write_gate: Mutex<()>,
}

impl std::fmt::Debug for EdgeCollection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeCollection")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl EdgeCollection {
    /// Creates a collection in `dir`, which must not hold a finished collection. Leftovers of
    /// a creation that never wrote its metadata are removed first.
    pub fn create(
        name: &str,
        dir: &Path,
        spec: CollectionSpec,
        options: &EdgeStoreOptions,
    ) -> Result<Self> {
        if CollectionMeta::load(dir)?.is_some() {
            return Err(RetrievalError::AlreadyExists(name.into()));
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| crate::edge::meta::io_error(dir, &e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| crate::edge::meta::io_error(dir, &e))?;
        let shard = guarded(|| EdgeShard::new(dir, options.shard_config(spec.dimension)))?;
        let collection = Self::assemble(name, dir, shard, CollectionMeta::new(spec), options);
        collection.create_index(FILE_ID_KEY, PayloadSchemaType::Keyword)?;
        collection.create_index(LANG_KEY, PayloadSchemaType::Keyword)?;
        collection.read_meta().save(dir)?;
        Ok(collection)
    }

    /// Opens the collection in `dir`; `None` when there is no finished collection there.
    pub fn open(name: &str, dir: &Path, options: &EdgeStoreOptions) -> Result<Option<Self>> {
        let Some(meta) = CollectionMeta::load(dir)? else {
            return Ok(None);
        };
        let shard = guarded(|| EdgeShard::load(dir, None))?;
        let collection = Self::assemble(name, dir, shard, meta, options);
        // Collections made before chunks carried their language get its index now.
        if !collection
            .payload_indexes()?
            .iter()
            .any(|(path, _)| path == LANG_KEY)
        {
            collection.create_index(LANG_KEY, PayloadSchemaType::Keyword)?;
        }
        Ok(Some(collection))
    }

    fn assemble(
        name: &str,
        dir: &Path,
        shard: EdgeShard,
        meta: CollectionMeta,
        options: &EdgeStoreOptions,
    ) -> Self {
        Self {
            name: name.into(),
            dir: dir.into(),
            shard,
            meta: RwLock::new(meta),
            options: options.clone(),
            optimize_gate: Mutex::new(()),
            write_gate: Mutex::new(()),
        }
    }

    /// The directory the collection lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Model, dimension, point count and attribute types.
    pub fn info(&self) -> Result<CollectionInfo> {
        let meta = self.read_meta().clone();
        let info = guarded(|| Ok(self.shard.info()))?;
        Ok(CollectionInfo {
            spec: meta.spec,
            points: info.points_count,
            indexed_vectors: info.indexed_vectors_count,
            attributes: meta.attributes.as_map().clone(),
        })
    }

    /// Stores chunks, replacing points with the same ids. New attributes get a payload index
    /// and enter the registry before any point that carries them is written.
    pub fn upsert(&self, chunks: Vec<Chunk>) -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let dimension = self.read_meta().spec.dimension;
        for chunk in &chunks {
            check_vector(&chunk.vector, dimension)?;
        }
        let _write = lock(&self.write_gate);
        let fresh = {
            let meta = self.read_meta();
            let mut fresh = Vec::new();
            for chunk in &chunks {
                for (name, kind) in meta.attributes.new_attributes(&chunk.payload.attributes)? {
                    if !fresh.iter().any(|(n, _)| n == &name) {
                        fresh.push((name, kind));
                    }
                }
            }
            fresh
        };
        for (name, _) in &fresh {
            attribute_path(name).map_err(|_| RetrievalError::InvalidArgument {
                field: "attributes",
                reason: format!("attribute name `{name}` must not contain `\"` or `\\`"),
            })?;
        }
        if !fresh.is_empty() {
            for (name, kind) in &fresh {
                self.create_index(&attribute_path(name)?, schema_type(*kind))?;
            }
            let mut meta = self.meta.write().unwrap_or_else(PoisonError::into_inner);
            for (name, kind) in fresh {
                meta.attributes.insert(name, kind);
            }
            meta.save(&self.dir)?;
        }
        self.write_points(
            chunks
                .into_iter()
                .map(|chunk| {
                    PointStruct::new(chunk.id, chunk.vector, chunk.payload.to_json()).into()
                })
                .collect(),
        )
    }

    /// Deletes every chunk of `file_id`; returns how many there were.
    pub fn delete_file(&self, file_id: &str) -> Result<usize> {
        let filter = qdrant_filter(&Cond::Keyword {
            path: FILE_ID_KEY.into(),
            value: file_id.into(),
        })?;
        self.delete_matching(filter)
    }

    /// Searches with an OpenAI filter checked against the attribute registry.
    pub fn search(&self, query: SearchQuery) -> Result<Vec<SearchHit>> {
        check_search(&query)?;
        let filter = {
            let meta = self.read_meta();
            if meta.spec.model != query.model {
                return Err(RetrievalError::ModelMismatch {
                    collection: self.name.clone(),
                    stored: meta.spec.model.clone(),
                    requested: query.model,
                });
            }
            check_vector(&query.vector, meta.spec.dimension)?;
            let attributes = match &query.filter {
                Some(filter) => Some(lower(filter, &meta.attributes)?),
                None => None,
            };
            search_cond(attributes, query.languages.as_ref())
        };
        let filter = filter.as_ref().map(qdrant_filter).transpose()?;
        self.search_points(query.vector, filter, query.limit, query.score_threshold)?
            .into_iter()
            .map(|hit| {
                Ok(SearchHit {
                    id: hit.id,
                    score: hit.score,
                    payload: ChunkPayload::from_json(&hit.payload)?,
                })
            })
            .collect()
    }

    /// Nearest points to `vector` among those matching a Qdrant `filter`, with their raw
    /// payloads.
    pub fn search_points(
        &self,
        vector: Vec<f32>,
        filter: Option<Filter>,
        limit: usize,
        score_threshold: Option<f32>,
    ) -> Result<Vec<RawHit>> {
        check_vector(&vector, self.read_meta().spec.dimension)?;
        let request = SearchRequest {
            query: QueryEnum::from(vector),
            filter,
            params: Some(self.options.search_params()),
            limit,
            offset: 0,
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: None,
            score_threshold,
        };
        let points = guarded(|| self.shard.search(request))?;
        points
            .into_iter()
            .map(|point| {
                let id = match point.id {
                    PointId::NumId(id) => id,
                    PointId::Uuid(uuid) => {
                        return Err(RetrievalError::Storage(format!(
                            "point {uuid} was not written by nfai"
                        )));
                    }
                };
                Ok(RawHit {
                    id,
                    score: point.score,
                    payload: point.payload.map(|p| p.0).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The first `limit` points by id with their vectors and the payload `fields`. Point ids
    /// are hashes, so these are an even sample of the collection.
    pub fn scroll_points(&self, limit: usize, fields: &[&str]) -> Result<Vec<RawPoint>> {
        let fields = fields
            .iter()
            .map(|f| {
                JsonPath::try_from(*f)
                    .map_err(|()| RetrievalError::filter(*f, "not a valid payload path"))
            })
            .collect::<Result<Vec<_>>>()?;
        let request = ScrollRequest {
            offset: None,
            limit: Some(limit.max(1)),
            filter: None,
            with_payload: Some(WithPayloadInterface::Fields(fields)),
            with_vector: WithVector::Bool(true),
            order_by: None,
        };
        let (records, _) = guarded(|| self.shard.scroll(request))?;
        records
            .into_iter()
            .map(|record| {
                let PointId::NumId(id) = record.id else {
                    return Err(RetrievalError::Storage(format!(
                        "point {} was not written by nfai",
                        record.id
                    )));
                };
                let vector = match record.vector {
                    Some(VectorStructInternal::Single(v)) => Some(v),
                    Some(VectorStructInternal::Named(mut named)) => {
                        match named.remove(DEFAULT_VECTOR_NAME) {
                            Some(VectorInternal::Dense(v)) => Some(v),
                            _ => None,
                        }
                    }
                    _ => None,
                }
                .ok_or_else(|| {
                    RetrievalError::Storage(format!("point {id} has no dense vector"))
                })?;
                Ok(RawPoint {
                    id,
                    vector,
                    payload: record.payload.map(|p| p.0).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Up to `limit` chunks' vectors and languages (see [`EdgeCollection::scroll_points`]).
    pub fn sample(&self, limit: usize) -> Result<Vec<SampledChunk>> {
        Ok(self
            .scroll_points(limit, &[LANG_KEY])?
            .into_iter()
            .map(|p| SampledChunk {
                lang: p
                    .payload
                    .get(LANG_KEY)
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                vector: p.vector,
            })
            .collect())
    }

    /// Stores points with raw JSON payloads, replacing points with the same ids. Attributes
    /// are not registered: callers that filter on them create their indexes themselves.
    pub fn upsert_points(&self, points: Vec<(u64, Vec<f32>, Map<String, Value>)>) -> Result<()> {
        let dimension = self.read_meta().spec.dimension;
        for (_, vector, _) in &points {
            check_vector(vector, dimension)?;
        }
        let _write = lock(&self.write_gate);
        self.write_points(
            points
                .into_iter()
                .map(|(id, vector, payload)| {
                    PointStruct::new(id, vector, Value::Object(payload)).into()
                })
                .collect(),
        )
    }

    fn write_points(&self, points: Vec<qdrant_edge::PointStructPersisted>) -> Result<()> {
        let op = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(points),
        ));
        guarded(|| self.shard.update(op))
    }

    /// Deletes the points matching a Qdrant filter; returns how many there were.
    ///
    /// When nothing matches (a file ingested for the first time) it returns without the write
    /// gate, so it does not wait behind a flush: counting takes no gate, and a point written
    /// after the count is as if written after the delete.
    pub fn delete_matching(&self, filter: Filter) -> Result<usize> {
        if self.count_matching(Some(filter.clone()))? == 0 {
            return Ok(0);
        }
        let _write = lock(&self.write_gate);
        let count = self.count_matching(Some(filter.clone()))?;
        if count > 0 {
            let op = UpdateOperation::PointOperation(PointOperations::DeletePointsByFilter(filter));
            guarded(|| self.shard.update(op))?;
        }
        Ok(count)
    }

    /// The payload indexes of the shard: payload key and type.
    pub fn payload_indexes(&self) -> Result<Vec<(String, PayloadSchemaType)>> {
        let info = guarded(|| Ok(self.shard.info()))?;
        Ok(info
            .payload_schema
            .into_iter()
            .map(|(key, index)| (key.to_string(), index.data_type))
            .collect())
    }

    /// Number of stored chunks.
    pub fn count(&self) -> Result<usize> {
        self.count_matching(None)
    }

    /// Number of chunks matching a Qdrant filter.
    pub fn count_matching(&self, filter: Option<Filter>) -> Result<usize> {
        guarded(|| {
            self.shard.count(CountRequest {
                filter,
                exact: true,
            })
        })
    }

    /// Creates a payload index on `path` (a Qdrant payload key).
    pub fn create_index(&self, path: &str, schema: PayloadSchemaType) -> Result<()> {
        let field_name = JsonPath::try_from(path)
            .map_err(|()| RetrievalError::filter(path, "not a valid payload path"))?;
        let op =
            UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(CreateIndex {
                field_name,
                field_schema: Some(PayloadFieldSchema::FieldType(schema)),
            }));
        guarded(|| self.shard.update(op))
    }

    /// Builds HNSW and quantized indexes for the segments that need them; `true` if any work
    /// was done. Blocks for seconds on large collections; searches keep answering meanwhile.
    pub fn optimize(&self) -> Result<bool> {
        let _optimize = lock(&self.optimize_gate);
        guarded(|| self.shard.optimize())
    }

    /// Writes the WAL and segments to disk.
    pub fn flush(&self) -> Result<()> {
        let _optimize = lock(&self.optimize_gate);
        let _write = lock(&self.write_gate);
        catch_unwind(AssertUnwindSafe(|| self.shard.flush())).map_err(|panic| {
            RetrievalError::Storage(format!("flush failed: {}", panic_message(&panic)))
        })
    }

    fn read_meta(&self) -> std::sync::RwLockReadGuard<'_, CollectionMeta> {
        self.meta.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`Cond`] as qdrant-edge's filter type.
pub fn qdrant_filter(cond: &Cond) -> Result<Filter> {
    serde_json::from_value(to_qdrant_json(cond))
        .map_err(|e| RetrievalError::Unavailable(format!("filter translation failed: {e}")))
}

fn schema_type(kind: AttributeKind) -> PayloadSchemaType {
    match kind {
        AttributeKind::String => PayloadSchemaType::Keyword,
        AttributeKind::Number => PayloadSchemaType::Float,
        AttributeKind::Bool => PayloadSchemaType::Bool,
    }
}

fn lock(gate: &Mutex<()>) -> MutexGuard<'_, ()> {
    gate.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs a qdrant-edge call, turning its errors and panics into [`RetrievalError`]s.
fn guarded<T>(call: impl FnOnce() -> Result<T, OperationError>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(edge_error(e)),
        Err(panic) => Err(RetrievalError::Unavailable(format!(
            "embedded store fault: {}",
            panic_message(&panic)
        ))),
    }
}

fn edge_error(e: OperationError) -> RetrievalError {
    let message = e.to_string();
    match e {
        OperationError::Timeout { .. } => RetrievalError::Timeout(message),
        OperationError::WrongVectorDimension { .. } => RetrievalError::InvalidVector(message),
        OperationError::Cancelled { .. } => RetrievalError::Unavailable(message),
        _ => RetrievalError::Storage(message),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}
