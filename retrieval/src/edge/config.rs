//! How nfai configures a qdrant-edge shard: cosine distance, HNSW, int8 scalar quantization
//! kept in RAM, and searches that rescore the quantized candidates with the original vectors.

use qdrant_edge::{
    DEFAULT_VECTOR_NAME, Distance, EdgeConfig, EdgeConfigBuilder, EdgeOptimizersConfig,
    EdgeVectorParamsBuilder, HnswIndexConfig, QuantizationConfig, QuantizationSearchParams,
    ScalarQuantizationConfig, ScalarType, SearchParams,
};

/// Tunables of the embedded store.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeStoreOptions {
    /// HNSW graph degree.
    pub hnsw_m: usize,
    /// HNSW build-time candidate list size.
    pub hnsw_ef_construct: usize,
    /// HNSW search-time candidate list size; `None` uses `hnsw_ef_construct`.
    pub hnsw_ef: Option<usize>,
    /// Segments larger than this many KiB get an HNSW index when optimized; below it, search
    /// is an exact scan. `None` keeps qdrant's default (10,000 KiB, about 6,700 vectors of 384
    /// dimensions).
    pub indexing_threshold_kb: Option<usize>,
    /// Candidates fetched from the quantized index per hit, before rescoring.
    pub oversampling: f64,
}

impl Default for EdgeStoreOptions {
    fn default() -> Self {
        Self {
            hnsw_m: 16,
            hnsw_ef_construct: 100,
            hnsw_ef: None,
            indexing_threshold_kb: None,
            oversampling: 2.0,
        }
    }
}

impl EdgeStoreOptions {
    /// The shard configuration of a new collection of `dimension`-sized vectors.
    pub(crate) fn shard_config(&self, dimension: usize) -> EdgeConfig {
        let hnsw = HnswIndexConfig {
            m: self.hnsw_m,
            ef_construct: self.hnsw_ef_construct,
            ..HnswIndexConfig::default()
        };
        let quantization = QuantizationConfig::from(ScalarQuantizationConfig {
            r#type: ScalarType::Int8,
            quantile: Some(0.99),
            always_ram: Some(true),
        });
        let vector = EdgeVectorParamsBuilder::new(dimension, Distance::Cosine).build();
        EdgeConfigBuilder::new()
            .vector(DEFAULT_VECTOR_NAME, vector)
            .hnsw_config(hnsw)
            .quantization_config(quantization)
            .optimizers(EdgeOptimizersConfig {
                indexing_threshold: self.indexing_threshold_kb,
                ..EdgeOptimizersConfig::default()
            })
            .build()
    }

    /// Search parameters: HNSW on int8 codes, then rescoring with the stored vectors.
    pub(crate) fn search_params(&self) -> SearchParams {
        SearchParams {
            hnsw_ef: self.hnsw_ef,
            quantization: Some(QuantizationSearchParams {
                ignore: false,
                rescore: Some(true),
                oversampling: Some(self.oversampling),
            }),
            ..SearchParams::default()
        }
    }
}
