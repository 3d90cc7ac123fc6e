//! Closing object schemas before they become grammars: an object schema that names its
//! `properties` and says nothing about other properties gets `additionalProperties: false`.
//!
//! JSON Schema lets an object carry properties its schema does not name unless it says
//! otherwise. A grammar that allows them lets a small model invent keys until `max_tokens` runs
//! out (seen with SmolLM2 on tool arguments: `{"id":23,"description":…,"type":…,"properties":
//! {…}}` nested until the cut). OpenAI's strict mode requires `additionalProperties: false` on
//! every object for the same reason. Every output of the closed schema is valid against the
//! schema as sent, so nothing a client validates against changes.
//!
//! Left open: objects without `properties` (`{"type": "object"}` is any object), objects that
//! say `additionalProperties`, `patternProperties` or `unevaluatedProperties` themselves, and
//! the members of an `allOf` and objects with one (their properties may be named by a sibling,
//! which closing one part would forbid).

use serde_json::{Map, Value};

/// Keywords whose value is one subschema.
const ONE: &[&str] = &[
    "items",
    "additionalItems",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "additionalProperties",
    "propertyNames",
];
/// Keywords whose value is a list of subschemas.
const LIST: &[&str] = &["anyOf", "oneOf", "prefixItems"];
/// Keywords whose value maps names to subschemas.
const MAP: &[&str] = &["properties", "$defs", "definitions", "patternProperties"];

/// `schema` with every object schema that names its properties closed (see the module docs).
pub fn closed(schema: &Value) -> Value {
    close(schema, false)
}

fn close(schema: &Value, in_all_of: bool) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::with_capacity(map.len() + 1);
    for (key, value) in map {
        let value = match (key.as_str(), value) {
            (k, v) if ONE.contains(&k) => close(v, false),
            (k, Value::Array(list)) if LIST.contains(&k) => {
                Value::Array(list.iter().map(|v| close(v, false)).collect())
            }
            ("allOf", Value::Array(list)) => {
                Value::Array(list.iter().map(|v| close(v, true)).collect())
            }
            (k, Value::Object(named)) if MAP.contains(&k) => Value::Object(
                named
                    .iter()
                    .map(|(n, v)| (n.clone(), close(v, false)))
                    .collect(),
            ),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    let open = [
        "additionalProperties",
        "patternProperties",
        "unevaluatedProperties",
        "allOf",
    ]
    .iter()
    .any(|k| map.contains_key(*k));
    if map.contains_key("properties") && !open && !in_all_of {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn named_properties_close_nested_objects_too() {
        let s = json!({
            "type": "object",
            "properties": {
                "id": { "type": "integer" },
                "address": { "type": "object", "properties": { "city": { "type": "string" } } },
                "tags": { "type": "array", "items": { "properties": { "k": {} } } },
                "any": { "type": "object" }
            },
            "$defs": { "x": { "properties": { "y": {} } } },
            "anyOf": [{ "properties": { "z": {} } }]
        });
        let c = closed(&s);
        assert_eq!(c["additionalProperties"], false);
        assert_eq!(c["properties"]["address"]["additionalProperties"], false);
        assert_eq!(
            c["properties"]["tags"]["items"]["additionalProperties"],
            false
        );
        assert_eq!(c["$defs"]["x"]["additionalProperties"], false);
        assert_eq!(c["anyOf"][0]["additionalProperties"], false);
        assert!(c["properties"]["any"].get("additionalProperties").is_none());
        assert!(c["properties"]["id"].get("additionalProperties").is_none());
    }

    #[test]
    fn what_the_schema_says_is_kept() {
        for open in [
            json!({ "properties": { "a": {} }, "additionalProperties": true }),
            json!({ "properties": { "a": {} }, "additionalProperties": { "type": "string" } }),
            json!({ "properties": { "a": {} }, "patternProperties": { "^x": {} } }),
            json!({ "properties": { "a": {} }, "allOf": [{ "properties": { "b": {} } }] }),
        ] {
            let c = closed(&open);
            assert_eq!(
                c.get("additionalProperties"),
                open.get("additionalProperties")
            );
        }
        let parts = closed(&json!({ "allOf": [{ "properties": { "a": {} } }] }));
        assert!(parts["allOf"][0].get("additionalProperties").is_none());
        assert_eq!(closed(&json!(true)), json!(true));
        assert_eq!(closed(&json!({})), json!({}));
    }
}
