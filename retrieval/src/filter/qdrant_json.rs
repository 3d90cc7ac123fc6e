//! [`Cond`] rendered as Qdrant's documented JSON filter (`must`, `should`, `must_not`, field
//! conditions with `match` or `range`), the form qdrant-edge deserializes.

use serde_json::{Value, json};

use crate::filter::Cond;

/// The filter object for `cond`; a bare field condition is wrapped in `must`.
pub fn to_qdrant_json(cond: &Cond) -> Value {
    match cond {
        Cond::Must(_) | Cond::Should(_) | Cond::Not(_) => clause(cond),
        _ => json!({ "must": [clause(cond)] }),
    }
}

fn clause(cond: &Cond) -> Value {
    match cond {
        Cond::Must(conds) => json!({ "must": conds.iter().map(clause).collect::<Vec<_>>() }),
        Cond::Should(conds) => json!({ "should": conds.iter().map(clause).collect::<Vec<_>>() }),
        Cond::Not(inner) => json!({ "must_not": [clause(inner)] }),
        Cond::Keyword { path, value } => json!({ "key": path, "match": { "value": value } }),
        Cond::Keywords { path, values } => json!({ "key": path, "match": { "any": values } }),
        Cond::Bool { path, value } => json!({ "key": path, "match": { "value": value } }),
        Cond::Range {
            path,
            gt,
            gte,
            lt,
            lte,
        } => {
            let mut range = serde_json::Map::new();
            for (name, bound) in [("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte)] {
                if let Some(b) = bound {
                    range.insert(name.into(), json!(b));
                }
            }
            json!({ "key": path, "range": range })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_documented_shapes() {
        let cond = Cond::Should(vec![
            Cond::Keyword {
                path: "attributes.region".into(),
                value: "north".into(),
            },
            Cond::Not(Box::new(Cond::Range {
                path: "attributes.amount".into(),
                gt: Some(1.0),
                gte: None,
                lt: None,
                lte: None,
            })),
        ]);
        assert_eq!(
            to_qdrant_json(&cond),
            json!({"should": [
                {"key": "attributes.region", "match": {"value": "north"}},
                {"must_not": [{"key": "attributes.amount", "range": {"gt": 1.0}}]}
            ]})
        );
    }
}
