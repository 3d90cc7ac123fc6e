//! Conversions between nfai's types and Qdrant's gRPC messages: JSON payloads to and from
//! `qdrant::Value`, and [`Cond`] to a gRPC `Filter`.

use std::collections::HashMap;

use qdrant_client::qdrant::{
    self, Condition, FieldCondition, Filter, Match, Range, RepeatedStrings, condition, r#match,
    value,
};
use serde_json::{Map, Number, Value as Json};

use crate::filter::Cond;

/// A JSON value as a Qdrant value.
pub fn to_qdrant_value(json: &Json) -> qdrant::Value {
    let kind = match json {
        Json::Null => value::Kind::NullValue(0),
        Json::Bool(b) => value::Kind::BoolValue(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => value::Kind::IntegerValue(i),
            None => value::Kind::DoubleValue(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => value::Kind::StringValue(s.clone()),
        Json::Array(items) => value::Kind::ListValue(qdrant::ListValue {
            values: items.iter().map(to_qdrant_value).collect(),
        }),
        Json::Object(map) => value::Kind::StructValue(qdrant::Struct {
            fields: to_qdrant_payload(map),
        }),
    };
    qdrant::Value { kind: Some(kind) }
}

/// A JSON object as a Qdrant payload map.
pub fn to_qdrant_payload(map: &Map<String, Json>) -> HashMap<String, qdrant::Value> {
    map.iter()
        .map(|(k, v)| (k.clone(), to_qdrant_value(v)))
        .collect()
}

/// A Qdrant value as JSON (a non-finite double becomes null).
pub fn to_json(value: &qdrant::Value) -> Json {
    match &value.kind {
        None | Some(value::Kind::NullValue(_)) => Json::Null,
        Some(value::Kind::BoolValue(b)) => Json::Bool(*b),
        Some(value::Kind::IntegerValue(i)) => Json::from(*i),
        Some(value::Kind::DoubleValue(d)) => Number::from_f64(*d).map_or(Json::Null, Json::Number),
        Some(value::Kind::StringValue(s)) => Json::String(s.clone()),
        Some(value::Kind::ListValue(list)) => {
            Json::Array(list.values.iter().map(to_json).collect())
        }
        Some(value::Kind::StructValue(s)) => Json::Object(payload_to_json(&s.fields)),
    }
}

/// A Qdrant payload map as a JSON object.
pub fn payload_to_json(payload: &HashMap<String, qdrant::Value>) -> Map<String, Json> {
    payload
        .iter()
        .map(|(k, v)| (k.clone(), to_json(v)))
        .collect()
}

/// A [`Cond`] as a gRPC filter; a bare field condition is wrapped in `must`.
pub fn to_grpc_filter(cond: &Cond) -> Filter {
    match cond {
        Cond::Must(conds) => Filter {
            must: conds.iter().map(to_grpc_condition).collect(),
            ..Filter::default()
        },
        Cond::Should(conds) => Filter {
            should: conds.iter().map(to_grpc_condition).collect(),
            ..Filter::default()
        },
        Cond::Not(inner) => Filter {
            must_not: vec![to_grpc_condition(inner)],
            ..Filter::default()
        },
        leaf => Filter {
            must: vec![to_grpc_condition(leaf)],
            ..Filter::default()
        },
    }
}

fn to_grpc_condition(cond: &Cond) -> Condition {
    let field = |key: &str, r#match: Option<Match>, range: Option<Range>| FieldCondition {
        key: key.to_owned(),
        r#match,
        range,
        ..FieldCondition::default()
    };
    let matching = |value: r#match::MatchValue| {
        Some(Match {
            match_value: Some(value),
        })
    };
    let one_of = match cond {
        Cond::Must(_) | Cond::Should(_) | Cond::Not(_) => {
            condition::ConditionOneOf::Filter(to_grpc_filter(cond))
        }
        Cond::Keyword { path, value } => condition::ConditionOneOf::Field(field(
            path,
            matching(r#match::MatchValue::Keyword(value.clone())),
            None,
        )),
        Cond::Keywords { path, values } => condition::ConditionOneOf::Field(field(
            path,
            matching(r#match::MatchValue::Keywords(RepeatedStrings {
                strings: values.clone(),
            })),
            None,
        )),
        Cond::Bool { path, value } => condition::ConditionOneOf::Field(field(
            path,
            matching(r#match::MatchValue::Boolean(*value)),
            None,
        )),
        Cond::Range {
            path,
            gt,
            gte,
            lt,
            lte,
        } => condition::ConditionOneOf::Field(field(
            path,
            None,
            Some(Range {
                lt: *lt,
                gt: *gt,
                gte: *gte,
                lte: *lte,
            }),
        )),
    };
    Condition {
        condition_one_of: Some(one_of),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_round_trips_through_qdrant_values() {
        let payload =
            json!({"a": 1, "b": 2.5, "c": "x", "d": true, "e": [1, "y"], "f": {"g": null}});
        let Json::Object(map) = &payload else {
            panic!("not an object");
        };
        assert_eq!(
            Json::Object(payload_to_json(&to_qdrant_payload(map))),
            payload
        );
    }

    #[test]
    fn compound_conditions_nest_as_filters() {
        let filter = to_grpc_filter(&Cond::Not(Box::new(Cond::Should(vec![Cond::Bool {
            path: "attributes.open".into(),
            value: true,
        }]))));
        assert_eq!(filter.must_not.len(), 1);
        let Some(condition::ConditionOneOf::Filter(inner)) = &filter.must_not[0].condition_one_of
        else {
            panic!("expected a nested filter");
        };
        assert_eq!(inner.should.len(), 1);
    }
}
