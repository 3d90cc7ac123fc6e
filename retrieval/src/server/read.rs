//! The server store's reads: nearest-neighbour search with the OpenAI filter and language
//! scope, and the sample of chunks a store's language balance is measured on.

use qdrant_client::qdrant::{
    self, QuantizationSearchParams, ScrollPoints, SearchParams, SearchPoints, WithPayloadSelector,
    WithVectorsSelector, with_payload_selector, with_vectors_selector,
};

use super::{QdrantServerStore, payload_to_json, server_error, to_grpc_filter};
use crate::error::{Result, RetrievalError};
use crate::filter::lower;
use crate::types::{
    ChunkPayload, LANG_KEY, SampledChunk, SearchHit, SearchQuery, check_search, check_vector,
    search_cond,
};

impl QdrantServerStore {
    pub(super) async fn sample_chunks(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<Vec<SampledChunk>> {
        let response = self
            .client
            .scroll(ScrollPoints {
                collection_name: name.into(),
                limit: Some(u32::try_from(limit.max(1)).unwrap_or(u32::MAX)),
                with_payload: Some(WithPayloadSelector {
                    selector_options: Some(with_payload_selector::SelectorOptions::Include(
                        qdrant::PayloadIncludeSelector {
                            fields: vec![LANG_KEY.into()],
                        },
                    )),
                }),
                with_vectors: Some(WithVectorsSelector {
                    selector_options: Some(with_vectors_selector::SelectorOptions::Enable(true)),
                }),
                ..ScrollPoints::default()
            })
            .await
            .map_err(|e| server_error(name, e))?;
        response
            .result
            .into_iter()
            .map(|point| {
                use qdrant::vector_output::Vector;
                use qdrant::vectors_output::VectorsOptions;
                let vector = match point.vectors.and_then(|v| v.vectors_options) {
                    Some(VectorsOptions::Vector(v)) => match v.into_vector() {
                        Vector::Dense(d) => Some(d.data),
                        _ => None,
                    },
                    _ => None,
                }
                .ok_or_else(|| {
                    RetrievalError::Storage(format!(
                        "collection `{name}` holds a point without one unnamed dense vector"
                    ))
                })?;
                let lang = payload_to_json(&point.payload)
                    .get(LANG_KEY)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned);
                Ok(SampledChunk { vector, lang })
            })
            .collect()
    }

    pub(super) async fn search_chunks(
        &self,
        name: &str,
        query: SearchQuery,
    ) -> Result<Vec<SearchHit>> {
        check_search(&query)?;
        let mut meta = self.meta(name, false).await?;
        let attributes = match &query.filter {
            None => None,
            Some(filter) => match lower(filter, &meta.attributes) {
                Ok(cond) => Some(cond),
                // Another replica may have added the attribute since the cache was filled.
                Err(RetrievalError::InvalidFilter { .. }) => {
                    meta = self.meta(name, true).await?;
                    Some(lower(filter, &meta.attributes)?)
                }
                Err(e) => return Err(e),
            },
        };
        if meta.spec.model != query.model {
            return Err(RetrievalError::ModelMismatch {
                collection: name.into(),
                stored: meta.spec.model,
                requested: query.model,
            });
        }
        check_vector(&query.vector, meta.spec.dimension)?;
        let cond = search_cond(attributes, query.languages.as_ref());
        let response = self
            .client
            .search_points(SearchPoints {
                collection_name: name.into(),
                vector: query.vector,
                filter: cond.as_ref().map(to_grpc_filter),
                limit: query.limit as u64,
                with_payload: Some(WithPayloadSelector {
                    selector_options: Some(with_payload_selector::SelectorOptions::Enable(true)),
                }),
                params: Some(SearchParams {
                    quantization: Some(QuantizationSearchParams {
                        ignore: Some(false),
                        rescore: Some(true),
                        oversampling: Some(self.oversampling),
                    }),
                    ..SearchParams::default()
                }),
                score_threshold: query.score_threshold,
                ..SearchPoints::default()
            })
            .await
            .map_err(|e| server_error(name, e))?;
        response
            .result
            .into_iter()
            .map(|point| {
                let id = match point.id.and_then(|id| id.point_id_options) {
                    Some(qdrant::point_id::PointIdOptions::Num(id)) => id,
                    _ => {
                        return Err(RetrievalError::Storage(
                            "a point without a numeric id was not written by nfai".into(),
                        ));
                    }
                };
                Ok(SearchHit {
                    id,
                    score: point.score,
                    payload: ChunkPayload::from_json(&payload_to_json(&point.payload))?,
                })
            })
            .collect()
    }
}
