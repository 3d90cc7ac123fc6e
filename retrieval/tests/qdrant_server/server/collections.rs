//! The test server's `Collections` service: collection create, get, exists, delete and field
//! indexes over [`EdgeStore`](nfai_retrieval::EdgeStore) collections.

use super::*;

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
