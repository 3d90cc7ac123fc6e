//! Lowering an OpenAI filter to [`Cond`], Qdrant's condition model, against a store's
//! attribute registry.
//!
//! Qdrant matches strings and booleans exactly and numbers by range, so a number `eq` becomes
//! the closed range `[v, v]` and a number `in` a `should` of such ranges; `ne` and `nin` are
//! `must_not` of `eq` and `in`. An attribute the store has never seen, a value of the wrong
//! type, or an order comparison on a string or boolean is an error naming the attribute.

use crate::error::{AttributeKind, Result, RetrievalError};
use crate::filter::{AttributeFilter, AttributeRegistry, ComparisonOp, CompoundOp, FilterValue};
use crate::types::{ATTRIBUTES_KEY, AttributeValue};

/// A Qdrant condition tree; `path` is a Qdrant payload key such as `attributes.region`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// Every condition holds.
    Must(Vec<Cond>),
    /// At least one condition holds.
    Should(Vec<Cond>),
    /// The condition does not hold.
    Not(Box<Cond>),
    /// A keyword field equals `value`.
    Keyword { path: String, value: String },
    /// A keyword field equals one of `values`.
    Keywords { path: String, values: Vec<String> },
    /// A boolean field equals `value`.
    Bool { path: String, value: bool },
    /// A numeric field lies in the range (each bound optional).
    Range {
        path: String,
        gt: Option<f64>,
        gte: Option<f64>,
        lt: Option<f64>,
        lte: Option<f64>,
    },
}

/// The payload path of an attribute, quoted when the name needs it. Names holding `"` or `\`
/// cannot be expressed as a Qdrant path and are refused.
pub fn attribute_path(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(RetrievalError::filter(
            name,
            "attribute names must not be empty",
        ));
    }
    if name
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Ok(format!("{ATTRIBUTES_KEY}.{name}"));
    }
    if name.contains(['"', '\\']) {
        return Err(RetrievalError::filter(
            name,
            "attribute names must not contain `\"` or `\\`",
        ));
    }
    Ok(format!("{ATTRIBUTES_KEY}.\"{name}\""))
}

/// Checks `filter` against `registry` and lowers it.
pub fn lower(filter: &AttributeFilter, registry: &AttributeRegistry) -> Result<Cond> {
    match filter {
        AttributeFilter::Compound { op, filters } => {
            let conds = filters
                .iter()
                .map(|f| lower(f, registry))
                .collect::<Result<Vec<_>>>()?;
            Ok(match op {
                CompoundOp::And => Cond::Must(conds),
                CompoundOp::Or => Cond::Should(conds),
            })
        }
        AttributeFilter::Comparison { op, key, value } => {
            let kind = registry.kind(key).ok_or_else(|| {
                RetrievalError::filter(key, "no file in this store has this attribute")
            })?;
            let path = attribute_path(key)?;
            comparison(*op, key, &path, kind, value)
        }
    }
}

fn comparison(
    op: ComparisonOp,
    key: &str,
    path: &str,
    kind: AttributeKind,
    value: &FilterValue,
) -> Result<Cond> {
    match (op, value) {
        (ComparisonOp::Eq, FilterValue::Scalar(v)) => equals(key, path, kind, v),
        (ComparisonOp::Ne, FilterValue::Scalar(v)) => {
            Ok(Cond::Not(Box::new(equals(key, path, kind, v)?)))
        }
        (ComparisonOp::In, FilterValue::List(values)) => one_of(key, path, kind, values),
        (ComparisonOp::Nin, FilterValue::List(values)) => {
            Ok(Cond::Not(Box::new(one_of(key, path, kind, values)?)))
        }
        (
            ComparisonOp::Gt | ComparisonOp::Gte | ComparisonOp::Lt | ComparisonOp::Lte,
            FilterValue::Scalar(v),
        ) => {
            if kind != AttributeKind::Number {
                return Err(RetrievalError::filter(
                    key,
                    format!("`{}` compares numbers; this attribute is {kind}", op.name()),
                ));
            }
            let bound = number(key, kind, v)?;
            let (mut gt, mut gte, mut lt, mut lte) = (None, None, None, None);
            match op {
                ComparisonOp::Gt => gt = Some(bound),
                ComparisonOp::Gte => gte = Some(bound),
                ComparisonOp::Lt => lt = Some(bound),
                _ => lte = Some(bound),
            }
            Ok(Cond::Range {
                path: path.into(),
                gt,
                gte,
                lt,
                lte,
            })
        }
        (_, FilterValue::List(_)) => Err(RetrievalError::filter(
            key,
            format!("`{}` needs a single value, not a list", op.name()),
        )),
        (_, FilterValue::Scalar(_)) => Err(RetrievalError::filter(
            key,
            format!("`{}` needs a list value", op.name()),
        )),
    }
}

fn equals(key: &str, path: &str, kind: AttributeKind, value: &AttributeValue) -> Result<Cond> {
    match (kind, value) {
        (AttributeKind::String, AttributeValue::String(s)) => Ok(Cond::Keyword {
            path: path.into(),
            value: s.clone(),
        }),
        (AttributeKind::Bool, AttributeValue::Bool(b)) => Ok(Cond::Bool {
            path: path.into(),
            value: *b,
        }),
        (AttributeKind::Number, AttributeValue::Number(n)) => Ok(Cond::Range {
            path: path.into(),
            gt: None,
            gte: Some(*n),
            lt: None,
            lte: Some(*n),
        }),
        (kind, value) => Err(wrong_type(key, kind, value)),
    }
}

fn one_of(key: &str, path: &str, kind: AttributeKind, values: &[AttributeValue]) -> Result<Cond> {
    if kind == AttributeKind::String {
        let strings = values
            .iter()
            .map(|v| match v {
                AttributeValue::String(s) => Ok(s.clone()),
                other => Err(wrong_type(key, kind, other)),
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(Cond::Keywords {
            path: path.into(),
            values: strings,
        });
    }
    let conds = values
        .iter()
        .map(|v| equals(key, path, kind, v))
        .collect::<Result<Vec<_>>>()?;
    Ok(Cond::Should(conds))
}

fn number(key: &str, kind: AttributeKind, value: &AttributeValue) -> Result<f64> {
    match value {
        AttributeValue::Number(n) => Ok(*n),
        other => Err(wrong_type(key, kind, other)),
    }
}

fn wrong_type(key: &str, kind: AttributeKind, value: &AttributeValue) -> RetrievalError {
    RetrievalError::filter(
        key,
        format!(
            "this attribute is {kind}; the filter gives {}",
            value.kind()
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn registry() -> AttributeRegistry {
        AttributeRegistry::from_map(BTreeMap::from([
            ("region".into(), AttributeKind::String),
            ("amount".into(), AttributeKind::Number),
            ("open".into(), AttributeKind::Bool),
            ("tên khách".into(), AttributeKind::String),
        ]))
    }

    fn lowered(value: serde_json::Value) -> Result<Cond> {
        lower(&AttributeFilter::from_json(&value)?, &registry())
    }

    fn failing_attribute(value: serde_json::Value) -> String {
        match lowered(value) {
            Err(RetrievalError::InvalidFilter { attribute, .. }) => attribute,
            other => panic!("expected an invalid filter, got {other:?}"),
        }
    }

    #[test]
    fn number_equality_is_a_closed_range() {
        assert_eq!(
            lowered(json!({"type": "eq", "key": "amount", "value": 3})).unwrap(),
            Cond::Range {
                path: "attributes.amount".into(),
                gt: None,
                gte: Some(3.0),
                lt: None,
                lte: Some(3.0)
            }
        );
    }

    #[test]
    fn nin_is_must_not_of_any() {
        assert_eq!(
            lowered(json!({"type": "nin", "key": "region", "value": ["a", "b"]})).unwrap(),
            Cond::Not(Box::new(Cond::Keywords {
                path: "attributes.region".into(),
                values: vec!["a".into(), "b".into()]
            }))
        );
    }

    #[test]
    fn names_that_need_quoting_are_quoted() {
        assert_eq!(attribute_path("region").unwrap(), "attributes.region");
        assert_eq!(attribute_path("a.b c").unwrap(), "attributes.\"a.b c\"");
        assert!(attribute_path("a\"b").is_err());
        assert!(lowered(json!({"type": "eq", "key": "tên khách", "value": "An"})).is_ok());
    }

    #[test]
    fn unknown_and_mistyped_attributes_are_named() {
        assert_eq!(
            failing_attribute(json!({"type": "eq", "key": "colour", "value": "red"})),
            "colour"
        );
        assert_eq!(
            failing_attribute(json!({"type": "eq", "key": "amount", "value": "3"})),
            "amount"
        );
        assert_eq!(
            failing_attribute(json!({"type": "gt", "key": "region", "value": "a"})),
            "region"
        );
        assert_eq!(
            failing_attribute(json!({"type": "lt", "key": "open", "value": true})),
            "open"
        );
        assert_eq!(
            failing_attribute(json!({"type": "in", "key": "open", "value": [true, 1]})),
            "open"
        );
        assert_eq!(
            failing_attribute(json!({"type": "or", "filters": [
                {"type": "eq", "key": "region", "value": "a"},
                {"type": "eq", "key": "missing", "value": 1}
            ]})),
            "missing"
        );
    }
}
