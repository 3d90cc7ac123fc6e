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

mod collections;
mod points;

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
        RetrievalError::Missing { .. } => Status::not_found(e.to_string()),
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

impl std::fmt::Debug for EdgeQdrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeQdrant")
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}
