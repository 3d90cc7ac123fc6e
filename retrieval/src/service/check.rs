//! Validation of what clients attach to stores and files, each failure naming its field:
//! `metadata` (≤16 string pairs), `attributes` (≤16; strings, numbers or booleans) and
//! `chunking_strategy` (resolved against the store's embedder).

use serde_json::{Map, Value, json};

use crate::error::{Result, RetrievalError};
use crate::ingest::{ChunkingStrategy, EmbedderLimits, IngestError};

/// Most pairs in `metadata` or `attributes`.
pub const MAX_PAIRS: usize = 16;
/// Longest key.
pub const MAX_KEY_CHARS: usize = 64;
/// Longest string value.
pub const MAX_VALUE_CHARS: usize = 512;

fn invalid(field: &'static str, reason: String) -> RetrievalError {
    RetrievalError::InvalidArgument { field, reason }
}

fn check_keys(map: &Map<String, Value>, field: &'static str) -> Result<()> {
    if map.len() > MAX_PAIRS {
        return Err(invalid(
            field,
            format!("has {} keys; at most {MAX_PAIRS} are allowed", map.len()),
        ));
    }
    if let Some(key) = map
        .keys()
        .find(|k| k.is_empty() || k.chars().count() > MAX_KEY_CHARS)
    {
        return Err(invalid(
            field,
            format!("key `{key}` must be 1..={MAX_KEY_CHARS} characters"),
        ));
    }
    Ok(())
}

fn check_string(key: &str, s: &str, field: &'static str) -> Result<()> {
    if s.chars().count() > MAX_VALUE_CHARS {
        return Err(invalid(
            field,
            format!("the value of `{key}` is longer than {MAX_VALUE_CHARS} characters"),
        ));
    }
    Ok(())
}

/// `metadata`: at most 16 string values.
pub fn metadata(map: &Map<String, Value>) -> Result<()> {
    check_keys(map, "metadata")?;
    for (key, value) in map {
        match value {
            Value::String(s) => check_string(key, s, "metadata")?,
            _ => {
                return Err(invalid(
                    "metadata",
                    format!("the value of `{key}` must be a string"),
                ));
            }
        }
    }
    Ok(())
}

/// `attributes`: at most 16 values, each a string, a finite number or a boolean.
pub fn attributes(map: &Map<String, Value>) -> Result<()> {
    check_keys(map, "attributes")?;
    for (key, value) in map {
        match value {
            Value::String(s) => check_string(key, s, "attributes")?,
            Value::Bool(_) => {}
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => {}
            _ => {
                return Err(invalid(
                    "attributes",
                    format!("the value of `{key}` must be a string, a number or a boolean"),
                ));
            }
        }
    }
    Ok(())
}

fn chunking_error(e: IngestError) -> RetrievalError {
    match e {
        IngestError::InvalidChunking { field, reason } => invalid(field, reason),
        other => invalid("chunking_strategy", other.to_string()),
    }
}

/// Resolves a `chunking_strategy` (absent: `fallback`) for an embedder into its static form,
/// `{"type": "static", "static": {max_chunk_size_tokens, chunk_overlap_tokens}}`. `auto` is
/// OpenAI's 800/400 cut to the embedder's limit.
pub fn chunking(value: Option<&Value>, fallback: &Value, limits: EmbedderLimits) -> Result<Value> {
    let value = value.filter(|v| !v.is_null()).unwrap_or(fallback);
    let strategy = ChunkingStrategy::from_json(value).map_err(chunking_error)?;
    let (size, overlap) = strategy.window(limits).map_err(chunking_error)?;
    Ok(json!({
        "type": "static",
        "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_at_fault_are_named() {
        let limits = EmbedderLimits::from_positions(512, 2, 3);
        let auto = json!({"type": "auto"});
        let resolved = chunking(None, &auto, limits).unwrap();
        assert_eq!(resolved["static"]["max_chunk_size_tokens"], 507);
        assert_eq!(resolved["static"]["chunk_overlap_tokens"], 253);
        let too_big = json!({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}});
        match chunking(Some(&too_big), &auto, limits) {
            Err(RetrievalError::InvalidArgument { field, .. }) => {
                assert_eq!(field, "chunking_strategy.static.max_chunk_size_tokens");
            }
            other => panic!("{other:?}"),
        }
        let bad: Map<String, Value> = serde_json::from_value(json!({"a": [1]})).unwrap();
        assert!(attributes(&bad).is_err());
        assert!(metadata(&bad).is_err());
        let good: Map<String, Value> =
            serde_json::from_value(json!({"a": "x", "b": 2.5, "c": true})).unwrap();
        assert!(attributes(&good).is_ok());
        assert!(metadata(&good).is_err());
    }
}
