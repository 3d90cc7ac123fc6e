//! Narrowing JSON schemas before they become grammars, so that a small model cannot run an
//! answer to `max_tokens` inside one value. Every output of the narrowed schema is valid
//! against the schema as sent, so nothing a client validates against changes.
//!
//! - **Objects are closed**: an object schema that names its `properties` and says nothing
//!   about other properties gets `additionalProperties: false`. JSON Schema lets an object carry
//!   properties its schema does not name unless it says otherwise. A grammar that allows them
//!   lets a small model invent keys until `max_tokens` runs out (seen with SmolLM2 on tool
//!   arguments: `{"id":23,"description":…,"type":…,"properties":{…}}` nested until the cut).
//!   OpenAI's strict mode requires `additionalProperties: false` on every object for the same
//!   reason. Left open: objects without `properties` (`{"type": "object"}` is any object),
//!   objects that say `additionalProperties`, `patternProperties` or `unevaluatedProperties`
//!   themselves, and the members of an `allOf` and objects with one (their properties may be
//!   named by a sibling, which closing one part would forbid).
//! - **Integers are bounded**: an integer schema without a `minimum` (or `maximum`) gets
//!   ±[`SAFE_INTEGER`], the range RFC 8259 (section 6) calls interoperable: the integers that
//!   every JSON parser, JavaScript's included, reads exactly. Without a bound the grammar allows
//!   any number of digits, and a small model that starts repeating a digit pattern (seen with
//!   SmolLM2 on "Where is my order 4521?": `{"order_id":452145214521…`) writes digits until
//!   `max_tokens` runs out. Left alone: integers with an `enum` or a `const` (their values are
//!   the bound) and schemas that also allow `number`.

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

/// The largest integer that a 64-bit float holds exactly, 2^53 − 1 (JavaScript's
/// `Number.MAX_SAFE_INTEGER`).
pub const SAFE_INTEGER: i64 = (1 << 53) - 1;

/// `schema` narrowed: objects that name their properties closed, integers bounded (see the
/// module docs).
pub fn narrowed(schema: &Value) -> Value {
    narrow(schema, false)
}

fn narrow(schema: &Value, in_all_of: bool) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::with_capacity(map.len() + 1);
    for (key, value) in map {
        let value = match (key.as_str(), value) {
            (k, v) if ONE.contains(&k) => narrow(v, false),
            (k, Value::Array(list)) if LIST.contains(&k) => {
                Value::Array(list.iter().map(|v| narrow(v, false)).collect())
            }
            ("allOf", Value::Array(list)) => {
                Value::Array(list.iter().map(|v| narrow(v, true)).collect())
            }
            (k, Value::Object(named)) if MAP.contains(&k) => Value::Object(
                named
                    .iter()
                    .map(|(n, v)| (n.clone(), narrow(v, false)))
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
    if unbounded_integer(map) {
        let [low, high] = [
            ["minimum", "exclusiveMinimum"],
            ["maximum", "exclusiveMaximum"],
        ]
        .map(|keys| keys.iter().find_map(|k| map.get(*k)?.as_f64()));
        let safe = SAFE_INTEGER as f64;
        // A bound the schema sets outside the safe range keeps the other side open, so that
        // the narrowed schema stays satisfiable.
        if low.is_none() && high.is_none_or(|h| h >= -safe) {
            out.insert("minimum".into(), Value::from(-SAFE_INTEGER));
        }
        if high.is_none() && low.is_none_or(|l| l <= safe) {
            out.insert("maximum".into(), Value::from(SAFE_INTEGER));
        }
    }
    Value::Object(out)
}

/// Whether `map` is an integer schema whose values are not listed (`enum`, `const`) and which
/// does not also allow `number`.
fn unbounded_integer(map: &Map<String, Value>) -> bool {
    let integer = match map.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(types)) => {
            types.iter().any(|t| t == "integer") && !types.iter().any(|t| t == "number")
        }
        _ => false,
    };
    integer && !map.contains_key("enum") && !map.contains_key("const")
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
        let c = narrowed(&s);
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
            let c = narrowed(&open);
            assert_eq!(
                c.get("additionalProperties"),
                open.get("additionalProperties")
            );
        }
        let parts = narrowed(&json!({ "allOf": [{ "properties": { "a": {} } }] }));
        assert!(parts["allOf"][0].get("additionalProperties").is_none());
        assert_eq!(narrowed(&json!(true)), json!(true));
        assert_eq!(narrowed(&json!({})), json!({}));
    }

    #[test]
    fn integers_get_the_safe_range_unless_they_say_otherwise() {
        let s = json!({
            "type": "object",
            "properties": {
                "id": { "type": "integer" },
                "qty": { "type": "integer", "minimum": 1 },
                "year": { "type": "integer", "minimum": 2000, "maximum": 2100 },
                "maybe": { "type": ["integer", "null"] },
                "price": { "type": "number" },
                "either": { "type": ["integer", "number"] },
                "code": { "type": "integer", "enum": [12345678901234567890u64] },
                "big": { "type": "integer", "exclusiveMinimum": 1e20 },
                "list": { "type": "array", "items": { "type": "integer" } }
            }
        });
        let c = narrowed(&s);
        let p = &c["properties"];
        let safe = json!(SAFE_INTEGER);
        let neg = json!(-SAFE_INTEGER);
        assert_eq!((&p["id"]["minimum"], &p["id"]["maximum"]), (&neg, &safe));
        assert_eq!(
            (&p["qty"]["minimum"], &p["qty"]["maximum"]),
            (&json!(1), &safe)
        );
        assert_eq!(p["year"], s["properties"]["year"]);
        assert_eq!(p["maybe"]["maximum"], safe);
        assert_eq!(p["list"]["items"]["maximum"], safe);
        for kept in ["price", "either", "code", "big"] {
            assert_eq!(p[kept], s["properties"][kept], "{kept}");
        }
    }
}
