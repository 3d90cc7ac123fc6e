//! The OpenAI vector-store filter: `{type: eq|ne|gt|gte|lt|lte|in|nin, key, value}` or
//! `{type: and|or, filters: [...]}`, parsed from JSON.
//!
//! Parsing names the failing part by its path (`filters.filters[1].value`), refuses unknown
//! types and fields, and bounds nesting so that no input can exhaust the stack.

use serde_json::Value;

use crate::error::{Result, RetrievalError};
use crate::types::AttributeValue;

/// Deepest nesting of compound filters accepted.
pub const MAX_FILTER_DEPTH: usize = 8;
/// Most comparisons and compounds in one filter.
pub const MAX_FILTER_NODES: usize = 256;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparisonOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
}

impl ComparisonOp {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "in" => Self::In,
            "nin" => Self::Nin,
            _ => return None,
        })
    }

    /// The operator's wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::In => "in",
            Self::Nin => "nin",
        }
    }
}

/// A compound operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompoundOp {
    And,
    Or,
}

/// A comparison's value: one scalar, or a list for `in` and `nin`.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Scalar(AttributeValue),
    List(Vec<AttributeValue>),
}

/// A parsed OpenAI filter.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeFilter {
    Comparison {
        op: ComparisonOp,
        key: String,
        value: FilterValue,
    },
    Compound {
        op: CompoundOp,
        filters: Vec<AttributeFilter>,
    },
}

impl AttributeFilter {
    /// Parses the `filters` field of a search request.
    pub fn from_json(value: &Value) -> Result<Self> {
        let mut nodes = 0;
        parse(value, "filters", 0, &mut nodes)
    }
}

fn parse(value: &Value, path: &str, depth: usize, nodes: &mut usize) -> Result<AttributeFilter> {
    *nodes += 1;
    if *nodes > MAX_FILTER_NODES {
        return Err(RetrievalError::filter(
            path,
            format!("a filter may hold at most {MAX_FILTER_NODES} conditions"),
        ));
    }
    let Value::Object(map) = value else {
        return Err(RetrievalError::filter(path, "must be an object"));
    };
    let kind = map
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| RetrievalError::filter(format!("{path}.type"), "must be a string"))?;
    if let Some(op) = ComparisonOp::parse(kind) {
        return parse_comparison(map, path, op);
    }
    let op = match kind {
        "and" => CompoundOp::And,
        "or" => CompoundOp::Or,
        other => {
            return Err(RetrievalError::filter(
                format!("{path}.type"),
                format!("`{other}` is not one of eq, ne, gt, gte, lt, lte, in, nin, and, or"),
            ));
        }
    };
    if depth >= MAX_FILTER_DEPTH {
        return Err(RetrievalError::filter(
            path,
            format!("compound filters nest at most {MAX_FILTER_DEPTH} deep"),
        ));
    }
    if let Some(field) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "filters"))
    {
        return Err(RetrievalError::filter(
            format!("{path}.{field}"),
            "unknown field in a compound filter",
        ));
    }
    let Some(Value::Array(items)) = map.get("filters") else {
        return Err(RetrievalError::filter(
            format!("{path}.filters"),
            "must be a list of filters",
        ));
    };
    if items.is_empty() {
        return Err(RetrievalError::filter(
            format!("{path}.filters"),
            "must not be empty",
        ));
    }
    let filters = items
        .iter()
        .enumerate()
        .map(|(i, item)| parse(item, &format!("{path}.filters[{i}]"), depth + 1, nodes))
        .collect::<Result<Vec<_>>>()?;
    Ok(AttributeFilter::Compound { op, filters })
}

fn parse_comparison(
    map: &serde_json::Map<String, Value>,
    path: &str,
    op: ComparisonOp,
) -> Result<AttributeFilter> {
    if let Some(field) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "key" | "value"))
    {
        return Err(RetrievalError::filter(
            format!("{path}.{field}"),
            "unknown field in a comparison filter",
        ));
    }
    let key = match map.get("key") {
        Some(Value::String(key)) if !key.is_empty() => key.clone(),
        _ => {
            return Err(RetrievalError::filter(
                format!("{path}.key"),
                "must be a non-empty string",
            ));
        }
    };
    let raw = map
        .get("value")
        .ok_or_else(|| RetrievalError::filter(&key, "the comparison has no `value`"))?;
    let scalar = |v: &Value| {
        AttributeValue::from_json(v).ok_or_else(|| {
            RetrievalError::filter(&key, "values must be strings, numbers or booleans")
        })
    };
    let value = match (op, raw) {
        (ComparisonOp::In | ComparisonOp::Nin, Value::Array(items)) => {
            if items.is_empty() {
                return Err(RetrievalError::filter(
                    &key,
                    format!("`{}` needs a non-empty list", op.name()),
                ));
            }
            FilterValue::List(items.iter().map(scalar).collect::<Result<_>>()?)
        }
        (ComparisonOp::In | ComparisonOp::Nin, _) => {
            return Err(RetrievalError::filter(
                &key,
                format!("`{}` needs a list value", op.name()),
            ));
        }
        (_, value) => FilterValue::Scalar(scalar(value)?),
    };
    Ok(AttributeFilter::Comparison { op, key, value })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn err_attribute(value: Value) -> String {
        match AttributeFilter::from_json(&value) {
            Err(RetrievalError::InvalidFilter { attribute, .. }) => attribute,
            other => panic!("expected an invalid filter, got {other:?}"),
        }
    }

    #[test]
    fn parses_comparisons_and_compounds() {
        let filter = AttributeFilter::from_json(&json!({
            "type": "and",
            "filters": [
                {"type": "eq", "key": "region", "value": "north"},
                {"type": "in", "key": "year", "value": [2024, 2025]},
                {"type": "or", "filters": [{"type": "gte", "key": "amount", "value": 1.5}]}
            ]
        }))
        .unwrap();
        let AttributeFilter::Compound { op, filters } = filter else {
            panic!("not a compound");
        };
        assert_eq!(op, CompoundOp::And);
        assert_eq!(filters.len(), 3);
        assert_eq!(
            filters[1],
            AttributeFilter::Comparison {
                op: ComparisonOp::In,
                key: "year".into(),
                value: FilterValue::List(vec![
                    AttributeValue::Number(2024.0),
                    AttributeValue::Number(2025.0)
                ]),
            }
        );
    }

    #[test]
    fn errors_name_the_failing_part() {
        assert_eq!(
            err_attribute(json!({"type": "like", "key": "a", "value": 1})),
            "filters.type"
        );
        assert_eq!(
            err_attribute(json!({"type": "eq", "value": 1})),
            "filters.key"
        );
        assert_eq!(
            err_attribute(json!({"type": "eq", "key": "region"})),
            "region"
        );
        assert_eq!(
            err_attribute(json!({"type": "in", "key": "region", "value": "x"})),
            "region"
        );
        assert_eq!(
            err_attribute(json!({"type": "eq", "key": "region", "value": [1]})),
            "region"
        );
        assert_eq!(
            err_attribute(json!({"type": "eq", "key": "region", "value": null})),
            "region"
        );
        assert_eq!(
            err_attribute(
                json!({"type": "and", "filters": [{"type": "eq", "key": "a", "value": 1, "x": 2}]})
            ),
            "filters.filters[0].x"
        );
        assert_eq!(
            err_attribute(json!({"type": "or", "filters": []})),
            "filters.filters"
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut value = json!({"type": "eq", "key": "a", "value": 1});
        for _ in 0..=MAX_FILTER_DEPTH {
            value = json!({"type": "and", "filters": [value]});
        }
        assert!(matches!(
            AttributeFilter::from_json(&value),
            Err(RetrievalError::InvalidFilter { .. })
        ));
    }
}
