//! [`QdrantServerStore`]: collections in a Qdrant server, reached over gRPC with qdrant-client.
//!
//! Collections are created with cosine distance, int8 scalar quantization kept in RAM, and a
//! keyword index on `file_id`; searches rescore quantized candidates. The embedding model and
//! dimension are stored as collection metadata (`nfai_model`, `nfai_dimension`), and the
//! attribute registry is the collection's payload schema (`attributes.*` indexes), so every
//! replica sees the same pins and types. Both are cached per collection and re-read when a
//! filter names an attribute the cache does not know.
//!
//! The server builds its indexes and persists writes on its own: `optimize` and `flush` only
//! check that the collection exists. Searches and the language sample are in `read`.

mod convert;
mod read;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use qdrant_client::qdrant::{
    self, CollectionExistsRequest, CountPoints, CreateCollection, CreateFieldIndexCollection,
    DeleteCollection, DeletePoints, Distance, FieldType, GetCollectionInfoRequest, Memory, PointId,
    PointStruct, PointsSelector, QuantizationConfig, QuantizationType, ScalarQuantization,
    UpsertPoints, VectorParams, VectorsConfig, points_selector, quantization_config,
    vectors_config,
};
use qdrant_client::{Qdrant, QdrantError};

pub use convert::{payload_to_json, to_grpc_filter, to_json, to_qdrant_payload, to_qdrant_value};

use crate::error::{AttributeKind, Result, RetrievalError};
use crate::filter::{AttributeRegistry, Cond, attribute_path};
use crate::store::VectorStore;
use crate::types::{
    ATTRIBUTES_KEY, Chunk, CollectionInfo, CollectionSpec, FILE_ID_KEY, LANG_KEY, SampledChunk,
    SearchHit, SearchQuery, check_vector,
};

/// Collection metadata key holding the embedding model id.
pub const MODEL_METADATA_KEY: &str = "nfai_model";
/// Collection metadata key holding the vector dimension.
pub const DIMENSION_METADATA_KEY: &str = "nfai_dimension";

/// How to reach the server.
#[derive(Clone)]
pub struct QdrantServerConfig {
    /// gRPC URL, e.g. `http://127.0.0.1:6334`.
    pub url: String,
    /// API key sent with every call (read from `NFAI_QDRANT_API_KEY_FILE` by the router).
    pub api_key: Option<String>,
    /// Deadline of each call.
    pub timeout: Duration,
    /// Deadline of establishing a connection.
    pub connect_timeout: Duration,
    /// Quantized candidates fetched per hit before rescoring.
    pub oversampling: f64,
}

impl QdrantServerConfig {
    /// A config for `url` with default deadlines and no API key.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            api_key: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            oversampling: 2.0,
        }
    }
}

impl std::fmt::Debug for QdrantServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantServerConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// What the store caches about one collection.
#[derive(Debug, Clone)]
struct ServerMeta {
    spec: CollectionSpec,
    attributes: AttributeRegistry,
}

/// A vector store in a Qdrant server; cheap to clone.
#[derive(Clone)]
pub struct QdrantServerStore {
    client: Arc<Qdrant>,
    oversampling: f64,
    meta: Arc<RwLock<HashMap<String, ServerMeta>>>,
}

impl std::fmt::Debug for QdrantServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantServerStore").finish_non_exhaustive()
    }
}

impl QdrantServerStore {
    /// A store on the server at `config.url`. Connects lazily: an unreachable server shows
    /// as [`RetrievalError::Unavailable`] on the first call, not here.
    pub fn new(config: &QdrantServerConfig) -> Result<Self> {
        let client = Qdrant::from_url(&config.url)
            .api_key(config.api_key.clone())
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .skip_compatibility_check()
            .build()
            .map_err(|e| RetrievalError::InvalidArgument {
                field: "qdrant_url",
                reason: e.to_string(),
            })?;
        Ok(Self {
            client: Arc::new(client),
            oversampling: config.oversampling,
            meta: Arc::new(RwLock::new(HashMap::new())),
        })
    }

    /// The collection's pins and attribute types, from the cache or the server.
    async fn meta(&self, name: &str, refresh: bool) -> Result<ServerMeta> {
        if !refresh {
            let cached = self
                .meta
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(name)
                .cloned();
            if let Some(meta) = cached {
                return Ok(meta);
            }
        }
        let info = self
            .client
            .collection_info(GetCollectionInfoRequest {
                collection_name: name.into(),
            })
            .await
            .map_err(|e| server_error(name, e))?
            .result
            .ok_or_else(|| RetrievalError::NotFound(name.into()))?;
        let meta = meta_from_info(name, &info)?;
        // Collections made before chunks carried their language get its index now.
        if !info.payload_schema.contains_key(LANG_KEY) {
            self.create_index(name, LANG_KEY, FieldType::Keyword)
                .await?;
        }
        self.meta
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.into(), meta.clone());
        Ok(meta)
    }

    async fn create(&self, name: &str, spec: CollectionSpec) -> Result<()> {
        spec.validate()?;
        let exists = self
            .client
            .collection_exists(CollectionExistsRequest {
                collection_name: name.into(),
            })
            .await
            .map_err(|e| server_error(name, e))?;
        if exists {
            return Err(RetrievalError::AlreadyExists(name.into()));
        }
        let metadata = HashMap::from([
            (
                MODEL_METADATA_KEY.to_owned(),
                to_qdrant_value(&serde_json::Value::String(spec.model.clone())),
            ),
            (
                DIMENSION_METADATA_KEY.to_owned(),
                to_qdrant_value(&serde_json::Value::from(spec.dimension)),
            ),
        ]);
        let vectors = VectorParams {
            size: spec.dimension as u64,
            distance: Distance::Cosine as i32,
            ..VectorParams::default()
        };
        let quantization = QuantizationConfig {
            quantization: Some(quantization_config::Quantization::Scalar(
                ScalarQuantization {
                    r#type: QuantizationType::Int8 as i32,
                    quantile: Some(0.99),
                    memory: Some(Memory::Pinned as i32),
                    ..ScalarQuantization::default()
                },
            )),
        };
        self.client
            .create_collection(CreateCollection {
                collection_name: name.into(),
                vectors_config: Some(VectorsConfig {
                    config: Some(vectors_config::Config::Params(vectors)),
                }),
                quantization_config: Some(quantization),
                metadata,
                ..CreateCollection::default()
            })
            .await
            .map_err(|e| server_error(name, e))?;
        self.create_index(name, FILE_ID_KEY, FieldType::Keyword)
            .await?;
        self.create_index(name, LANG_KEY, FieldType::Keyword)
            .await?;
        self.meta
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                name.into(),
                ServerMeta {
                    spec,
                    attributes: AttributeRegistry::default(),
                },
            );
        Ok(())
    }

    async fn create_index(&self, name: &str, path: &str, field_type: FieldType) -> Result<()> {
        self.client
            .create_field_index(CreateFieldIndexCollection {
                collection_name: name.into(),
                wait: Some(true),
                field_name: path.into(),
                field_type: Some(field_type as i32),
                ..CreateFieldIndexCollection::default()
            })
            .await
            .map_err(|e| server_error(name, e))?;
        Ok(())
    }

    async fn upsert_chunks(&self, name: &str, chunks: Vec<Chunk>) -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let meta = self.meta(name, false).await?;
        for chunk in &chunks {
            check_vector(&chunk.vector, meta.spec.dimension)?;
        }
        let mut registry = meta.attributes.clone();
        for chunk in &chunks {
            for (attribute, kind) in registry.new_attributes(&chunk.payload.attributes)? {
                let path =
                    attribute_path(&attribute).map_err(|_| RetrievalError::InvalidArgument {
                        field: "attributes",
                        reason: format!(
                            "attribute name `{attribute}` must not contain `\"` or `\\`"
                        ),
                    })?;
                self.create_index(name, &path, field_type(kind)).await?;
                registry.insert(attribute, kind);
            }
        }
        if registry != meta.attributes {
            self.meta
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(
                    name.into(),
                    ServerMeta {
                        spec: meta.spec,
                        attributes: registry,
                    },
                );
        }
        let points = chunks
            .into_iter()
            .map(|chunk| {
                let serde_json::Value::Object(payload) = chunk.payload.to_json() else {
                    return Err(RetrievalError::Storage(
                        "chunk payload is not an object".into(),
                    ));
                };
                Ok(PointStruct {
                    id: Some(PointId::from(chunk.id)),
                    payload: to_qdrant_payload(&payload),
                    vectors: Some(chunk.vector.into()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.client
            .upsert_points(UpsertPoints {
                collection_name: name.into(),
                wait: Some(true),
                points,
                ..UpsertPoints::default()
            })
            .await
            .map_err(|e| server_error(name, e))?;
        Ok(())
    }

    async fn delete_file_chunks(&self, name: &str, file_id: &str) -> Result<usize> {
        let filter = to_grpc_filter(&Cond::Keyword {
            path: FILE_ID_KEY.into(),
            value: file_id.into(),
        });
        let count = self.count_matching(name, Some(filter.clone())).await?;
        if count > 0 {
            self.client
                .delete_points(DeletePoints {
                    collection_name: name.into(),
                    wait: Some(true),
                    points: Some(PointsSelector {
                        points_selector_one_of: Some(points_selector::PointsSelectorOneOf::Filter(
                            filter,
                        )),
                    }),
                    ..DeletePoints::default()
                })
                .await
                .map_err(|e| server_error(name, e))?;
        }
        Ok(count)
    }

    async fn count_matching(&self, name: &str, filter: Option<qdrant::Filter>) -> Result<usize> {
        let response = self
            .client
            .count(CountPoints {
                collection_name: name.into(),
                filter,
                exact: Some(true),
                ..CountPoints::default()
            })
            .await
            .map_err(|e| server_error(name, e))?;
        Ok(response.result.map_or(0, |r| r.count as usize))
    }
}

fn meta_from_info(name: &str, info: &qdrant::CollectionInfo) -> Result<ServerMeta> {
    let metadata = info.config.as_ref().map(|c| &c.metadata);
    let read = |key: &str| metadata.and_then(|m| m.get(key)).map(to_json);
    let model = read(MODEL_METADATA_KEY).and_then(|v| v.as_str().map(str::to_owned));
    let dimension = read(DIMENSION_METADATA_KEY)
        .and_then(|v| v.as_u64())
        .and_then(|d| usize::try_from(d).ok());
    let (Some(model), Some(dimension)) = (model, dimension) else {
        return Err(RetrievalError::Storage(format!(
            "collection `{name}` has no `{MODEL_METADATA_KEY}`/`{DIMENSION_METADATA_KEY}` metadata; it was not created by nfai"
        )));
    };
    let prefix = format!("{ATTRIBUTES_KEY}.");
    let mut attributes = BTreeMap::new();
    for (key, schema) in &info.payload_schema {
        let Some(attribute) = key.strip_prefix(&prefix) else {
            continue;
        };
        let attribute = attribute
            .strip_prefix('"')
            .and_then(|a| a.strip_suffix('"'))
            .unwrap_or(attribute);
        let kind = match qdrant::PayloadSchemaType::try_from(schema.data_type) {
            Ok(qdrant::PayloadSchemaType::Keyword) => AttributeKind::String,
            Ok(qdrant::PayloadSchemaType::Float) => AttributeKind::Number,
            Ok(qdrant::PayloadSchemaType::Bool) => AttributeKind::Bool,
            _ => continue,
        };
        attributes.insert(attribute.to_owned(), kind);
    }
    Ok(ServerMeta {
        spec: CollectionSpec { model, dimension },
        attributes: AttributeRegistry::from_map(attributes),
    })
}

fn field_type(kind: AttributeKind) -> FieldType {
    match kind {
        AttributeKind::String => FieldType::Keyword,
        AttributeKind::Number => FieldType::Float,
        AttributeKind::Bool => FieldType::Bool,
    }
}

/// Maps a client error to a [`RetrievalError`] by its gRPC status code.
fn server_error(collection: &str, error: QdrantError) -> RetrievalError {
    match error {
        QdrantError::ResponseError { status } => {
            let message = format!("{:?}: {}", status.code(), status.message());
            match status.code() {
                tonic::Code::NotFound => RetrievalError::NotFound(collection.into()),
                tonic::Code::DeadlineExceeded => RetrievalError::Timeout(message),
                tonic::Code::Cancelled
                    if status.message().to_ascii_lowercase().contains("timeout") =>
                {
                    RetrievalError::Timeout(message)
                }
                tonic::Code::AlreadyExists => RetrievalError::AlreadyExists(collection.into()),
                _ => RetrievalError::Unavailable(message),
            }
        }
        QdrantError::ResourceExhaustedError {
            status,
            retry_after_seconds,
        } => RetrievalError::Unavailable(format!(
            "{}; retry after {retry_after_seconds} s",
            status.message()
        )),
        other => RetrievalError::Unavailable(other.to_string()),
    }
}

impl VectorStore for QdrantServerStore {
    fn create_collection<'a>(
        &'a self,
        name: &'a str,
        spec: CollectionSpec,
    ) -> BoxFuture<'a, Result<()>> {
        self.create(name, spec).boxed()
    }

    fn open_collection<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<CollectionInfo>> {
        async move {
            let meta = self.meta(name, true).await?;
            let info = self
                .client
                .collection_info(GetCollectionInfoRequest {
                    collection_name: name.into(),
                })
                .await
                .map_err(|e| server_error(name, e))?
                .result
                .ok_or_else(|| RetrievalError::NotFound(name.into()))?;
            Ok(CollectionInfo {
                spec: meta.spec,
                points: info.points_count.unwrap_or(0) as usize,
                indexed_vectors: info.indexed_vectors_count.unwrap_or(0) as usize,
                attributes: meta.attributes.as_map().clone(),
            })
        }
        .boxed()
    }

    fn drop_collection<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        async move {
            self.meta(name, true).await?;
            self.client
                .delete_collection(DeleteCollection {
                    collection_name: name.into(),
                    ..DeleteCollection::default()
                })
                .await
                .map_err(|e| server_error(name, e))?;
            self.meta
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(name);
            Ok(())
        }
        .boxed()
    }

    fn upsert<'a>(&'a self, name: &'a str, chunks: Vec<Chunk>) -> BoxFuture<'a, Result<()>> {
        self.upsert_chunks(name, chunks).boxed()
    }

    fn delete_file<'a>(&'a self, name: &'a str, file_id: &'a str) -> BoxFuture<'a, Result<usize>> {
        self.delete_file_chunks(name, file_id).boxed()
    }

    fn search<'a>(
        &'a self,
        name: &'a str,
        query: SearchQuery,
    ) -> BoxFuture<'a, Result<Vec<SearchHit>>> {
        self.search_chunks(name, query).boxed()
    }

    fn count<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<usize>> {
        self.count_matching(name, None).boxed()
    }

    fn sample<'a>(
        &'a self,
        name: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<SampledChunk>>> {
        self.sample_chunks(name, limit).boxed()
    }

    fn optimize<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool>> {
        async move {
            self.meta(name, false).await?;
            Ok(false)
        }
        .boxed()
    }

    fn flush<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        async move {
            self.meta(name, false).await?;
            Ok(())
        }
        .boxed()
    }
}
