//! The test server's `Points` service: upsert, delete by filter, search, count and scroll over
//! [`EdgeStore`](nfai_retrieval::EdgeStore) collections.

use super::*;

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

    /// The first points by id with their vectors and the payload fields asked for: what a
    /// store's language sample reads. Filters, offsets and ordering are not served.
    async fn scroll(
        &self,
        request: Request<qdrant::ScrollPoints>,
    ) -> Reply<qdrant::ScrollResponse> {
        use qdrant::with_payload_selector::SelectorOptions;
        let request = request.into_inner();
        if request.filter.is_some() || request.offset.is_some() || request.order_by.is_some() {
            return Err(Status::invalid_argument(
                "only an unfiltered scroll from the start is served",
            ));
        }
        let fields = match request.with_payload.and_then(|w| w.selector_options) {
            Some(SelectorOptions::Include(include)) => include.fields,
            _ => {
                return Err(Status::invalid_argument(
                    "a scroll must name the payload fields it reads",
                ));
            }
        };
        let limit = request.limit.unwrap_or(10) as usize;
        let points = self
            .on(request.collection_name, move |c| {
                let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
                c.scroll_points(limit, &fields).map_err(status)
            })
            .await?;
        let result = points
            .into_iter()
            .map(|p| qdrant::RetrievedPoint {
                id: Some(p.id.into()),
                payload: to_qdrant_payload(&p.payload),
                vectors: Some(qdrant::VectorsOutput {
                    vectors_options: Some(qdrant::vectors_output::VectorsOptions::Vector(
                        qdrant::VectorOutput {
                            vector: Some(qdrant::vector_output::Vector::Dense(
                                qdrant::DenseVector { data: p.vector },
                            )),
                            ..Default::default()
                        },
                    )),
                }),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(qdrant::ScrollResponse {
            result,
            ..Default::default()
        }))
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
