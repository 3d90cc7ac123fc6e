//! The values that cross the [`VectorStore`](crate::VectorStore) trait: collection specs,
//! chunks with their payload, search queries and hits.
//!
//! A chunk's payload is stored as one JSON object, `{file_id, filename, chunk_index, text,
//! attributes}`; filters reach attributes under `attributes.<name>`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{AttributeKind, Result, RetrievalError};
use crate::filter::{AttributeFilter, Cond};

/// Payload key of the file id; it has a keyword index in every collection.
pub const FILE_ID_KEY: &str = "file_id";
/// Payload key under which the attributes object lives.
pub const ATTRIBUTES_KEY: &str = "attributes";
/// The payload key of a chunk's language.
pub const LANG_KEY: &str = "lang";

/// What a collection is pinned to: the embedding model that built it and its dimension.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CollectionSpec {
    /// The embedding model id; searches with another model are refused.
    pub model: String,
    /// Vector dimension (384 for multilingual-e5-small and all-MiniLM-L6-v2).
    pub dimension: usize,
}

impl CollectionSpec {
    /// Checks the spec before a collection is created.
    pub fn validate(&self) -> Result<()> {
        if self.model.trim().is_empty() {
            return Err(RetrievalError::InvalidArgument {
                field: "model",
                reason: "must not be empty".into(),
            });
        }
        if self.dimension == 0 || self.dimension > 65_536 {
            return Err(RetrievalError::InvalidArgument {
                field: "dimension",
                reason: format!("{} is outside 1..=65536", self.dimension),
            });
        }
        Ok(())
    }
}

/// One attribute value: OpenAI allows strings, numbers and booleans.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    String(String),
    Number(f64),
    Bool(bool),
}

impl AttributeValue {
    /// The registry type of this value.
    pub fn kind(&self) -> AttributeKind {
        match self {
            Self::String(_) => AttributeKind::String,
            Self::Number(_) => AttributeKind::Number,
            Self::Bool(_) => AttributeKind::Bool,
        }
    }

    /// Reads a JSON scalar; `None` for null, arrays, objects and non-finite numbers.
    pub fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(Self::String(s.clone())),
            Value::Bool(b) => Some(Self::Bool(*b)),
            Value::Number(n) => n.as_f64().filter(|f| f.is_finite()).map(Self::Number),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }

    /// The JSON form stored in the payload.
    pub fn to_json(&self) -> Value {
        match self {
            Self::String(s) => Value::String(s.clone()),
            Self::Bool(b) => Value::Bool(*b),
            Self::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        }
    }
}

/// The stored payload of one chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkPayload {
    pub file_id: String,
    pub filename: String,
    pub chunk_index: u32,
    pub text: String,
    pub attributes: BTreeMap<String, AttributeValue>,
    /// The language of `text` (an ISO 639-3 code, see [`crate::ingest::detect_language`]);
    /// `None` when it could not be told. Searches balance the store's languages by it.
    pub lang: Option<String>,
}

impl ChunkPayload {
    /// The attributes as a JSON object, as stored and as the API shows them.
    pub fn attributes_json(&self) -> Map<String, Value> {
        self.attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect()
    }

    /// The payload as the JSON object both backends store.
    pub fn to_json(&self) -> Value {
        let attributes = self.attributes_json();
        let mut map = Map::new();
        map.insert(FILE_ID_KEY.into(), Value::String(self.file_id.clone()));
        map.insert("filename".into(), Value::String(self.filename.clone()));
        map.insert("chunk_index".into(), Value::from(self.chunk_index));
        map.insert("text".into(), Value::String(self.text.clone()));
        map.insert(ATTRIBUTES_KEY.into(), Value::Object(attributes));
        if let Some(lang) = &self.lang {
            map.insert(LANG_KEY.into(), Value::String(lang.clone()));
        }
        Value::Object(map)
    }

    /// Reads a stored payload back; a payload this crate did not write is a storage error.
    pub fn from_json(value: &Map<String, Value>) -> Result<Self> {
        let text_field = |key: &str| -> Result<String> {
            value
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| RetrievalError::Storage(format!("stored chunk lacks `{key}`")))
        };
        let chunk_index = value
            .get("chunk_index")
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| RetrievalError::Storage("stored chunk lacks `chunk_index`".into()))?;
        let attributes = match value.get(ATTRIBUTES_KEY) {
            Some(Value::Object(map)) => map
                .iter()
                .filter_map(|(k, v)| AttributeValue::from_json(v).map(|v| (k.clone(), v)))
                .collect(),
            _ => BTreeMap::new(),
        };
        Ok(Self {
            file_id: text_field(FILE_ID_KEY)?,
            filename: text_field("filename")?,
            chunk_index,
            text: text_field("text")?,
            attributes,
            lang: value
                .get(LANG_KEY)
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// One chunk to store: its point id, embedding and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub id: u64,
    pub vector: Vec<f32>,
    pub payload: ChunkPayload,
}

/// A stable point id for a file's chunk, so that re-ingesting a file overwrites its points.
pub fn chunk_point_id(file_id: &str, chunk_index: u32) -> u64 {
    // FNV-1a over the file id, a separator and the index: stable across builds and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = file_id
        .as_bytes()
        .iter()
        .copied()
        .chain([0xff])
        .chain(chunk_index.to_le_bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A search: the query's embedding, the model that made it, and the OpenAI search options.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// The embedding model of `vector`; it must be the collection's model.
    pub model: String,
    pub vector: Vec<f32>,
    pub filter: Option<AttributeFilter>,
    /// Maximum number of hits, 1..=[`MAX_SEARCH_LIMIT`].
    pub limit: usize,
    /// Hits scoring below this (cosine similarity) are left out.
    pub score_threshold: Option<f32>,
    /// Only chunks of these languages (see [`crate::balance`]); `None` searches them all.
    pub languages: Option<LanguageScope>,
}

/// Which chunks a search admits by their language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LanguageScope {
    /// Chunks in this language.
    Is(String),
    /// Chunks in none of these languages, or of no known language.
    NoneOf(Vec<String>),
}

impl LanguageScope {
    /// The condition on the chunk's payload.
    pub(crate) fn cond(&self) -> Cond {
        match self {
            Self::Is(lang) => Cond::Keyword {
                path: LANG_KEY.into(),
                value: lang.clone(),
            },
            Self::NoneOf(langs) => Cond::Not(Box::new(Cond::Keywords {
                path: LANG_KEY.into(),
                values: langs.clone(),
            })),
        }
    }
}

/// The condition a search applies: its attribute filter (lowered) and its language scope.
pub(crate) fn search_cond(
    attributes: Option<Cond>,
    languages: Option<&LanguageScope>,
) -> Option<Cond> {
    match (attributes, languages.map(LanguageScope::cond)) {
        (Some(a), Some(l)) => Some(Cond::Must(vec![a, l])),
        (a, l) => a.or(l),
    }
}

/// A stored chunk's vector and language, as [`crate::VectorStore::sample`] returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledChunk {
    pub vector: Vec<f32>,
    pub lang: Option<String>,
}

/// The largest `limit` a search accepts.
pub const MAX_SEARCH_LIMIT: usize = 1000;

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub id: u64,
    /// Cosine similarity between the query and the chunk.
    pub score: f32,
    pub payload: ChunkPayload,
}

/// What a collection holds, as its backend reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    pub spec: CollectionSpec,
    pub points: usize,
    /// Points already in an HNSW index (the rest are scanned until the next optimize).
    pub indexed_vectors: usize,
    /// Attributes that have a payload index, with their types.
    pub attributes: BTreeMap<String, AttributeKind>,
}

/// Checks a vector against a collection's dimension: right length, finite components.
pub(crate) fn check_vector(vector: &[f32], dimension: usize) -> Result<()> {
    if vector.len() != dimension {
        return Err(RetrievalError::InvalidVector(format!(
            "dimension {} differs from the collection's {dimension}",
            vector.len()
        )));
    }
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(RetrievalError::InvalidVector(
            "a component is NaN or infinite".into(),
        ));
    }
    Ok(())
}

/// Checks a query's limit and threshold.
pub(crate) fn check_search(query: &SearchQuery) -> Result<()> {
    if query.limit == 0 || query.limit > MAX_SEARCH_LIMIT {
        return Err(RetrievalError::InvalidArgument {
            field: "limit",
            reason: format!("{} is outside 1..={MAX_SEARCH_LIMIT}", query.limit),
        });
    }
    if query.score_threshold.is_some_and(|t| !t.is_finite()) {
        return Err(RetrievalError::InvalidArgument {
            field: "score_threshold",
            reason: "must be a finite number".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_through_json() {
        let payload = ChunkPayload {
            file_id: "file-1".into(),
            filename: "a.txt".into(),
            chunk_index: 3,
            text: "Xin chào".into(),
            attributes: BTreeMap::from([
                ("region".into(), AttributeValue::String("north".into())),
                ("amount".into(), AttributeValue::Number(12.5)),
                ("open".into(), AttributeValue::Bool(true)),
            ]),
            lang: Some("vie".into()),
        };
        let Value::Object(map) = payload.to_json() else {
            panic!("payload is not an object");
        };
        assert_eq!(map[LANG_KEY], "vie");
        assert_eq!(ChunkPayload::from_json(&map).unwrap(), payload);
        // A chunk of no known language stores no `lang`.
        let unknown = ChunkPayload {
            lang: None,
            ..payload
        };
        let Value::Object(map) = unknown.to_json() else {
            panic!("payload is not an object");
        };
        assert!(!map.contains_key(LANG_KEY));
        assert_eq!(ChunkPayload::from_json(&map).unwrap(), unknown);
    }

    #[test]
    fn point_ids_differ_by_file_and_index() {
        assert_ne!(chunk_point_id("file-1", 0), chunk_point_id("file-1", 1));
        assert_ne!(chunk_point_id("file-1", 0), chunk_point_id("file-2", 0));
        assert_eq!(chunk_point_id("file-1", 7), chunk_point_id("file-1", 7));
    }

    #[test]
    fn vectors_of_the_wrong_size_or_nan_are_refused() {
        assert!(check_vector(&[0.0, 1.0], 2).is_ok());
        assert!(matches!(
            check_vector(&[0.0], 2),
            Err(RetrievalError::InvalidVector(_))
        ));
        assert!(matches!(
            check_vector(&[0.0, f32::NAN], 2),
            Err(RetrievalError::InvalidVector(_))
        ));
    }
}
