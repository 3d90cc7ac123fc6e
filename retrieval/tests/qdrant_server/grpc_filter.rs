//! The test server's filter translation: a gRPC `Filter` as Qdrant's JSON filter, which
//! qdrant-edge reads. Covers the conditions a Qdrant client sends for keyword, integer and
//! boolean matches (single, any, except), numeric ranges and nested filters.

use qdrant_client::qdrant::{self, condition::ConditionOneOf, r#match::MatchValue};
use serde_json::{Value, json};
use tonic::Status;

/// A gRPC filter as qdrant-edge's filter.
pub fn edge_filter(filter: &qdrant::Filter) -> Result<qdrant_edge::Filter, Status> {
    serde_json::from_value(filter_json(filter)?)
        .map_err(|e| Status::invalid_argument(format!("filter: {e}")))
}

fn filter_json(filter: &qdrant::Filter) -> Result<Value, Status> {
    if filter.min_should.is_some() {
        return Err(Status::invalid_argument("min_should is not served"));
    }
    let mut out = serde_json::Map::new();
    for (name, conditions) in [
        ("must", &filter.must),
        ("should", &filter.should),
        ("must_not", &filter.must_not),
    ] {
        if !conditions.is_empty() {
            let list = conditions
                .iter()
                .map(condition_json)
                .collect::<Result<Vec<_>, _>>()?;
            out.insert(name.into(), Value::Array(list));
        }
    }
    Ok(Value::Object(out))
}

fn condition_json(condition: &qdrant::Condition) -> Result<Value, Status> {
    match &condition.condition_one_of {
        Some(ConditionOneOf::Filter(filter)) => filter_json(filter),
        Some(ConditionOneOf::Field(field)) => {
            if let Some(range) = &field.range {
                let mut bounds = serde_json::Map::new();
                for (name, bound) in [
                    ("gt", range.gt),
                    ("gte", range.gte),
                    ("lt", range.lt),
                    ("lte", range.lte),
                ] {
                    if let Some(b) = bound {
                        bounds.insert(name.into(), json!(b));
                    }
                }
                return Ok(json!({"key": field.key, "range": bounds}));
            }
            let value = match field.r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
                Some(MatchValue::Keyword(s)) => json!({"value": s}),
                Some(MatchValue::Integer(i)) => json!({"value": i}),
                Some(MatchValue::Boolean(b)) => json!({"value": b}),
                Some(MatchValue::Keywords(list)) => json!({"any": list.strings}),
                Some(MatchValue::Integers(list)) => json!({"any": list.integers}),
                Some(MatchValue::ExceptKeywords(list)) => json!({"except": list.strings}),
                Some(MatchValue::ExceptIntegers(list)) => json!({"except": list.integers}),
                _ => {
                    return Err(Status::invalid_argument(
                        "this field condition is not served",
                    ));
                }
            };
            Ok(json!({"key": field.key, "match": value}))
        }
        _ => Err(Status::invalid_argument("this condition is not served")),
    }
}
