//! A Qdrant-protocol gRPC server backed by qdrant-edge, for tests: qdrant-client's generated
//! `Collections` and `Points` services implemented over [`EdgeStore`] collections and served
//! by tonic on 127.0.0.1, port 0.
//!
//! It implements what nfai's server store calls (collection create, get, exists, delete;
//! point upsert, delete by filter, search, count; field indexes) with Qdrant's semantics and
//! status codes; every other method answers `UNIMPLEMENTED`. `delay` holds every search back,
//! to exercise client deadlines.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use nfai_retrieval::{
    CollectionSpec, DIMENSION_METADATA_KEY, EdgeCollection, EdgeStore, MODEL_METADATA_KEY,
    RetrievalError, VectorStore, payload_to_json, to_json, to_qdrant_payload,
};
use qdrant_client::qdrant::{
    self,
    collections_server::{Collections, CollectionsServer},
    points_server::{Points, PointsServer},
};
use qdrant_edge::PayloadSchemaType;
use tonic::{Request, Response, Status};

use super::grpc_filter::edge_filter;

type Reply<T> = Result<Response<T>, Status>;

/// The server's state; clones share the store.
#[derive(Clone)]
pub struct EdgeQdrant {
    store: EdgeStore,
    delay: Duration,
}

/// Serves `store` on a fresh local port; searches wait `delay` first.
pub async fn spawn(store: EdgeStore, delay: Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = EdgeQdrant { store, delay };
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(CollectionsServer::new(service.clone()))
            .add_service(PointsServer::new(service))
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    addr
}

fn unused(method: &str) -> Status {
    Status::unimplemented(format!("{method} is not served by the test server"))
}

fn status(e: RetrievalError) -> Status {
    match e {
        RetrievalError::NotFound(name) => {
            Status::not_found(format!("Not found: Collection `{name}` doesn't exist!"))
        }
        RetrievalError::AlreadyExists(name) => {
            Status::already_exists(format!("Collection `{name}` already exists!"))
        }
        RetrievalError::InvalidName { .. }
        | RetrievalError::InvalidFilter { .. }
        | RetrievalError::AttributeType { .. }
        | RetrievalError::InvalidVector(_)
        | RetrievalError::InvalidArgument { .. }
        | RetrievalError::ModelMismatch { .. } => Status::invalid_argument(e.to_string()),
        RetrievalError::Timeout(_) => Status::deadline_exceeded(e.to_string()),
        RetrievalError::Unavailable(_) | RetrievalError::Storage(_) => {
            Status::internal(e.to_string())
        }
    }
}

impl EdgeQdrant {
    /// Runs `call` on the blocking pool with the collection `name`.
    async fn on<T: Send + 'static>(
        &self,
        name: String,
        call: impl FnOnce(&EdgeCollection) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            call(store.collection_blocking(&name).map_err(status)?.as_ref())
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
    }
}

fn edge_schema(field_type: i32) -> Result<PayloadSchemaType, Status> {
    match qdrant::FieldType::try_from(field_type) {
        Ok(qdrant::FieldType::Keyword) => Ok(PayloadSchemaType::Keyword),
        Ok(qdrant::FieldType::Float) => Ok(PayloadSchemaType::Float),
        Ok(qdrant::FieldType::Integer) => Ok(PayloadSchemaType::Integer),
        Ok(qdrant::FieldType::Bool) => Ok(PayloadSchemaType::Bool),
        _ => Err(Status::invalid_argument(format!(
            "field type {field_type} is not served"
        ))),
    }
}

fn grpc_schema(schema: PayloadSchemaType) -> qdrant::PayloadSchemaType {
    match schema {
        PayloadSchemaType::Keyword => qdrant::PayloadSchemaType::Keyword,
        PayloadSchemaType::Integer => qdrant::PayloadSchemaType::Integer,
        PayloadSchemaType::Float => qdrant::PayloadSchemaType::Float,
        PayloadSchemaType::Bool => qdrant::PayloadSchemaType::Bool,
        PayloadSchemaType::Geo => qdrant::PayloadSchemaType::Geo,
        PayloadSchemaType::Text => qdrant::PayloadSchemaType::Text,
        PayloadSchemaType::Datetime => qdrant::PayloadSchemaType::Datetime,
        PayloadSchemaType::Uuid => qdrant::PayloadSchemaType::Uuid,
    }
}

#[allow(deprecated)]
fn dense(vectors: Option<qdrant::Vectors>) -> Result<Vec<f32>, Status> {
    use qdrant::vectors::VectorsOptions;
    match vectors.and_then(|v| v.vectors_options) {
        Some(VectorsOptions::Vector(v)) => match v.vector {
            Some(qdrant::vector::Vector::Dense(d)) => Ok(d.data),
            None => Ok(v.data),
            Some(_) => Err(Status::invalid_argument("only dense vectors are served")),
        },
        _ => Err(Status::invalid_argument(
            "a point needs one unnamed dense vector",
        )),
    }
}

fn point_id(id: Option<qdrant::PointId>) -> Result<u64, Status> {
    match id.and_then(|id| id.point_id_options) {
        Some(qdrant::point_id::PointIdOptions::Num(n)) => Ok(n),
        _ => Err(Status::invalid_argument(
            "only numeric point ids are served",
        )),
    }
}

fn done() -> Option<qdrant::UpdateResult> {
    Some(qdrant::UpdateResult {
        operation_id: Some(0),
        status: qdrant::UpdateStatus::Completed as i32,
    })
}

#[tonic::async_trait]
impl Collections for EdgeQdrant {
    async fn get(
        &self,
        request: Request<qdrant::GetCollectionInfoRequest>,
    ) -> Reply<qdrant::GetCollectionInfoResponse> {
        let name = request.into_inner().collection_name;
        let info = self.store.open_collection(&name).await.map_err(status)?;
        let indexes = self
            .on(name, |c| c.payload_indexes().map_err(status))
            .await?;
        let metadata = HashMap::from([
            (
                MODEL_METADATA_KEY.to_owned(),
                nfai_retrieval::to_qdrant_value(&info.spec.model.clone().into()),
            ),
            (
                DIMENSION_METADATA_KEY.to_owned(),
                nfai_retrieval::to_qdrant_value(&info.spec.dimension.into()),
            ),
        ]);
        let payload_schema = indexes
            .into_iter()
            .map(|(key, schema)| {
                (
                    key,
                    qdrant::PayloadSchemaInfo {
                        data_type: grpc_schema(schema) as i32,
                        ..Default::default()
                    },
                )
            })
            .collect();
        Ok(Response::new(qdrant::GetCollectionInfoResponse {
            result: Some(qdrant::CollectionInfo {
                status: qdrant::CollectionStatus::Green as i32,
                points_count: Some(info.points as u64),
                indexed_vectors_count: Some(info.indexed_vectors as u64),
                payload_schema,
                config: Some(qdrant::CollectionConfig {
                    metadata,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            time: 0.0,
        }))
    }

    async fn create(
        &self,
        request: Request<qdrant::CreateCollection>,
    ) -> Reply<qdrant::CollectionOperationResponse> {
        let request = request.into_inner();
        let size = match request.vectors_config.and_then(|v| v.config) {
            Some(qdrant::vectors_config::Config::Params(p)) => p.size as usize,
            _ => return Err(Status::invalid_argument("one unnamed vector is required")),
        };
        let model = request.metadata.get(MODEL_METADATA_KEY).map(to_json);
        let Some(serde_json::Value::String(model)) = model else {
            return Err(Status::invalid_argument(
                "this server stores collections with a model in their metadata",
            ));
        };
        let spec = CollectionSpec {
            model,
            dimension: size,
        };
        self.store
            .create_collection(&request.collection_name, spec)
            .await
            .map_err(status)?;
        Ok(Response::new(qdrant::CollectionOperationResponse {
            result: true,
            time: 0.0,
        }))
    }

    async fn delete(
        &self,
        request: Request<qdrant::DeleteCollection>,
    ) -> Reply<qdrant::CollectionOperationResponse> {
        let name = request.into_inner().collection_name;
        // Qdrant answers `false` for a collection that does not exist.
        let result = match self.store.drop_collection(&name).await {
            Ok(()) => true,
            Err(RetrievalError::NotFound(_)) => false,
            Err(e) => return Err(status(e)),
        };
        Ok(Response::new(qdrant::CollectionOperationResponse {
            result,
            time: 0.0,
        }))
    }

    async fn collection_exists(
        &self,
        request: Request<qdrant::CollectionExistsRequest>,
    ) -> Reply<qdrant::CollectionExistsResponse> {
        let name = request.into_inner().collection_name;
        let exists = match self.store.open_collection(&name).await {
            Ok(_) => true,
            Err(RetrievalError::NotFound(_)) => false,
            Err(e) => return Err(status(e)),
        };
        Ok(Response::new(qdrant::CollectionExistsResponse {
            result: Some(qdrant::CollectionExists { exists }),
            time: 0.0,
        }))
    }

    async fn list(
        &self,
        _: Request<qdrant::ListCollectionsRequest>,
    ) -> Reply<qdrant::ListCollectionsResponse> {
        Err(unused("list"))
    }

    async fn update(
        &self,
        _: Request<qdrant::UpdateCollection>,
    ) -> Reply<qdrant::CollectionOperationResponse> {
        Err(unused("update"))
    }

    async fn update_aliases(
        &self,
        _: Request<qdrant::ChangeAliases>,
    ) -> Reply<qdrant::CollectionOperationResponse> {
        Err(unused("update_aliases"))
    }

    async fn list_collection_aliases(
        &self,
        _: Request<qdrant::ListCollectionAliasesRequest>,
    ) -> Reply<qdrant::ListAliasesResponse> {
        Err(unused("list_collection_aliases"))
    }

    async fn list_aliases(
        &self,
        _: Request<qdrant::ListAliasesRequest>,
    ) -> Reply<qdrant::ListAliasesResponse> {
        Err(unused("list_aliases"))
    }

    async fn collection_cluster_info(
        &self,
        _: Request<qdrant::CollectionClusterInfoRequest>,
    ) -> Reply<qdrant::CollectionClusterInfoResponse> {
        Err(unused("collection_cluster_info"))
    }

    async fn update_collection_cluster_setup(
        &self,
        _: Request<qdrant::UpdateCollectionClusterSetupRequest>,
    ) -> Reply<qdrant::UpdateCollectionClusterSetupResponse> {
        Err(unused("update_collection_cluster_setup"))
    }

    async fn create_shard_key(
        &self,
        _: Request<qdrant::CreateShardKeyRequest>,
    ) -> Reply<qdrant::CreateShardKeyResponse> {
        Err(unused("create_shard_key"))
    }

    async fn delete_shard_key(
        &self,
        _: Request<qdrant::DeleteShardKeyRequest>,
    ) -> Reply<qdrant::DeleteShardKeyResponse> {
        Err(unused("delete_shard_key"))
    }

    async fn list_shard_keys(
        &self,
        _: Request<qdrant::ListShardKeysRequest>,
    ) -> Reply<qdrant::ListShardKeysResponse> {
        Err(unused("list_shard_keys"))
    }
}

#[tonic::async_trait]
impl Points for EdgeQdrant {
    async fn upsert(
        &self,
        request: Request<qdrant::UpsertPoints>,
    ) -> Reply<qdrant::PointsOperationResponse> {
        let request = request.into_inner();
        let points = request
            .points
            .into_iter()
            .map(|p| {
                Ok((
                    point_id(p.id)?,
                    dense(p.vectors)?,
                    payload_to_json(&p.payload),
                ))
            })
            .collect::<Result<Vec<_>, Status>>()?;
        self.on(request.collection_name, move |c| {
            c.upsert_points(points).map_err(status)
        })
        .await?;
        Ok(Response::new(qdrant::PointsOperationResponse {
            result: done(),
            ..Default::default()
        }))
    }

    async fn delete(
        &self,
        request: Request<qdrant::DeletePoints>,
    ) -> Reply<qdrant::PointsOperationResponse> {
        let request = request.into_inner();
        let filter = match request.points.and_then(|p| p.points_selector_one_of) {
            Some(qdrant::points_selector::PointsSelectorOneOf::Filter(f)) => edge_filter(&f)?,
            _ => {
                return Err(Status::invalid_argument(
                    "only deletes by filter are served",
                ));
            }
        };
        self.on(request.collection_name, move |c| {
            c.delete_matching(filter).map_err(status)
        })
        .await?;
        Ok(Response::new(qdrant::PointsOperationResponse {
            result: done(),
            ..Default::default()
        }))
    }

    async fn create_field_index(
        &self,
        request: Request<qdrant::CreateFieldIndexCollection>,
    ) -> Reply<qdrant::PointsOperationResponse> {
        let request = request.into_inner();
        let schema = edge_schema(
            request
                .field_type
                .unwrap_or(qdrant::FieldType::Keyword as i32),
        )?;
        let path = request.field_name;
        self.on(request.collection_name, move |c| {
            c.create_index(&path, schema).map_err(status)
        })
        .await?;
        Ok(Response::new(qdrant::PointsOperationResponse {
            result: done(),
            ..Default::default()
        }))
    }

    async fn search(
        &self,
        request: Request<qdrant::SearchPoints>,
    ) -> Reply<qdrant::SearchResponse> {
        tokio::time::sleep(self.delay).await;
        let request = request.into_inner();
        let filter = request.filter.as_ref().map(edge_filter).transpose()?;
        let limit = request.limit as usize;
        let (vector, threshold) = (request.vector, request.score_threshold);
        let hits = self
            .on(request.collection_name, move |c| {
                c.search_points(vector, filter, limit, threshold)
                    .map_err(status)
            })
            .await?;
        let result = hits
            .into_iter()
            .map(|hit| qdrant::ScoredPoint {
                id: Some(hit.id.into()),
                payload: to_qdrant_payload(&hit.payload),
                score: hit.score,
                ..Default::default()
            })
            .collect();
        Ok(Response::new(qdrant::SearchResponse {
            result,
            ..Default::default()
        }))
    }

    async fn count(&self, request: Request<qdrant::CountPoints>) -> Reply<qdrant::CountResponse> {
        let request = request.into_inner();
        let filter = request.filter.as_ref().map(edge_filter).transpose()?;
        let count = self
            .on(request.collection_name, move |c| {
                c.count_matching(filter).map_err(status)
            })
            .await?;
        Ok(Response::new(qdrant::CountResponse {
            result: Some(qdrant::CountResult {
                count: count as u64,
            }),
            ..Default::default()
        }))
    }

    async fn get(&self, _: Request<qdrant::GetPoints>) -> Reply<qdrant::GetResponse> {
        Err(unused("get"))
    }

    async fn update_vectors(
        &self,
        _: Request<qdrant::UpdatePointVectors>,
    ) -> Reply<qdrant::PointsOperationResponse> {
        Err(unused("update_vectors"))
    }

    async fn delete_vectors(
        &self,
        _: Request<qdrant::DeletePointVectors>,
    ) -> Reply<qdrant::PointsOperationResponse> {
        Err(unused("delete_vectors"))
    }

    async fn set_payload(
        &self,
        _: Request<qdrant::SetPayloadPoints>,
    ) -> Reply<qdrant::PointsOperationResponse> {
        Err(unused("set_payload"))
    }

    async fn overwrite_payload(
        &self,
        _: Request<qdrant::SetPayloadPoints>,
    ) -> Reply<qdrant::PointsOperationResponse> {
        Err(unused("overwrite_payload"))
    }

    async fn delete_payload(
        &self,
        _: Request<qdrant::DeletePayloadPoints>,
    ) -> Reply<qdrant::PointsOperationResponse> {
        Err(unused("delete_payload"))
    }

    async fn clear_payload(
        &self,
        _: Request<qdrant::ClearPayloadPoints>,
    ) -> Reply<qdrant::PointsOperationResponse> {
        Err(unused("clear_payload"))
    }

    async fn delete_field_index(
        &self,
        _: Request<qdrant::DeleteFieldIndexCollection>,
    ) -> Reply<qdrant::PointsOperationResponse> {
        Err(unused("delete_field_index"))
    }

    async fn create_vector_name(
        &self,
        _: Request<qdrant::CreateVectorNameRequest>,
    ) -> Reply<qdrant::PointsOperationResponse> {
        Err(unused("create_vector_name"))
    }

    async fn delete_vector_name(
        &self,
        _: Request<qdrant::DeleteVectorNameRequest>,
    ) -> Reply<qdrant::PointsOperationResponse> {
        Err(unused("delete_vector_name"))
    }

    async fn search_batch(
        &self,
        _: Request<qdrant::SearchBatchPoints>,
    ) -> Reply<qdrant::SearchBatchResponse> {
        Err(unused("search_batch"))
    }

    async fn search_groups(
        &self,
        _: Request<qdrant::SearchPointGroups>,
    ) -> Reply<qdrant::SearchGroupsResponse> {
        Err(unused("search_groups"))
    }

    async fn scroll(&self, _: Request<qdrant::ScrollPoints>) -> Reply<qdrant::ScrollResponse> {
        Err(unused("scroll"))
    }

    async fn recommend(
        &self,
        _: Request<qdrant::RecommendPoints>,
    ) -> Reply<qdrant::RecommendResponse> {
        Err(unused("recommend"))
    }

    async fn recommend_batch(
        &self,
        _: Request<qdrant::RecommendBatchPoints>,
    ) -> Reply<qdrant::RecommendBatchResponse> {
        Err(unused("recommend_batch"))
    }

    async fn recommend_groups(
        &self,
        _: Request<qdrant::RecommendPointGroups>,
    ) -> Reply<qdrant::RecommendGroupsResponse> {
        Err(unused("recommend_groups"))
    }

    async fn discover(
        &self,
        _: Request<qdrant::DiscoverPoints>,
    ) -> Reply<qdrant::DiscoverResponse> {
        Err(unused("discover"))
    }

    async fn discover_batch(
        &self,
        _: Request<qdrant::DiscoverBatchPoints>,
    ) -> Reply<qdrant::DiscoverBatchResponse> {
        Err(unused("discover_batch"))
    }

    async fn update_batch(
        &self,
        _: Request<qdrant::UpdateBatchPoints>,
    ) -> Reply<qdrant::UpdateBatchResponse> {
        Err(unused("update_batch"))
    }

    async fn query(&self, _: Request<qdrant::QueryPoints>) -> Reply<qdrant::QueryResponse> {
        Err(unused("query"))
    }

    async fn query_batch(
        &self,
        _: Request<qdrant::QueryBatchPoints>,
    ) -> Reply<qdrant::QueryBatchResponse> {
        Err(unused("query_batch"))
    }

    async fn query_groups(
        &self,
        _: Request<qdrant::QueryPointGroups>,
    ) -> Reply<qdrant::QueryGroupsResponse> {
        Err(unused("query_groups"))
    }

    async fn facet(&self, _: Request<qdrant::FacetCounts>) -> Reply<qdrant::FacetResponse> {
        Err(unused("facet"))
    }

    async fn search_matrix_pairs(
        &self,
        _: Request<qdrant::SearchMatrixPoints>,
    ) -> Reply<qdrant::SearchMatrixPairsResponse> {
        Err(unused("search_matrix_pairs"))
    }

    async fn search_matrix_offsets(
        &self,
        _: Request<qdrant::SearchMatrixPoints>,
    ) -> Reply<qdrant::SearchMatrixOffsetsResponse> {
        Err(unused("search_matrix_offsets"))
    }
}

impl std::fmt::Debug for EdgeQdrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeQdrant")
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}
