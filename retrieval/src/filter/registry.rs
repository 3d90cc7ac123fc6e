//! A store's attribute registry: the type of every attribute its chunks carry.
//!
//! Types are learned when chunks are stored; each new attribute gets a payload index of its
//! type. A later chunk whose value for the attribute has another type is refused by name, so
//! every filter can be type-checked before it reaches the index.

use std::collections::BTreeMap;

use crate::error::{AttributeKind, Result, RetrievalError};
use crate::types::AttributeValue;

/// Attribute name → type, for one store.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct AttributeRegistry(BTreeMap<String, AttributeKind>);

impl AttributeRegistry {
    /// A registry with these attributes.
    pub fn from_map(map: BTreeMap<String, AttributeKind>) -> Self {
        Self(map)
    }

    /// The recorded type of `name`.
    pub fn kind(&self, name: &str) -> Option<AttributeKind> {
        self.0.get(name).copied()
    }

    /// All attributes and their types.
    pub fn as_map(&self) -> &BTreeMap<String, AttributeKind> {
        &self.0
    }

    /// Checks `attributes` against the registry and returns the attributes it does not know
    /// yet (each once), without recording them. A type conflict is an error naming the
    /// attribute.
    pub fn new_attributes<'a>(
        &self,
        attributes: impl IntoIterator<Item = (&'a String, &'a AttributeValue)>,
    ) -> Result<Vec<(String, AttributeKind)>> {
        let mut fresh: BTreeMap<String, AttributeKind> = BTreeMap::new();
        for (name, value) in attributes {
            let got = value.kind();
            let known = self.kind(name).or_else(|| fresh.get(name).copied());
            match known {
                Some(expected) if expected != got => {
                    return Err(RetrievalError::AttributeType {
                        attribute: name.clone(),
                        expected,
                        got,
                    });
                }
                Some(_) => {}
                None => {
                    fresh.insert(name.clone(), got);
                }
            }
        }
        Ok(fresh.into_iter().collect())
    }

    /// Records an attribute's type.
    pub fn insert(&mut self, name: String, kind: AttributeKind) {
        self.0.insert(name, kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_attributes_are_reported_once_and_conflicts_named() {
        let mut registry = AttributeRegistry::default();
        registry.insert("region".into(), AttributeKind::String);
        let a = ("region".to_string(), AttributeValue::String("north".into()));
        let b = ("amount".to_string(), AttributeValue::Number(1.0));
        let c = ("amount".to_string(), AttributeValue::Number(2.0));
        let fresh = registry
            .new_attributes([(&a.0, &a.1), (&b.0, &b.1), (&c.0, &c.1)])
            .unwrap();
        assert_eq!(fresh, vec![("amount".to_string(), AttributeKind::Number)]);

        let bad = ("region".to_string(), AttributeValue::Bool(true));
        match registry.new_attributes([(&bad.0, &bad.1)]) {
            Err(RetrievalError::AttributeType {
                attribute,
                expected,
                got,
            }) => {
                assert_eq!(attribute, "region");
                assert_eq!(expected, AttributeKind::String);
                assert_eq!(got, AttributeKind::Bool);
            }
            other => panic!("expected a type conflict, got {other:?}"),
        }
    }
}
