//! OpenAI vector-store filters and their translation to Qdrant filters.
//!
//! - `openai`: the filter a client sends (comparisons eq, ne, gt, gte, lt, lte, in, nin on
//!   `attributes`; compound and/or), parsed from JSON with errors that name the field.
//! - `registry`: each store's attribute types, learned when chunks are stored.
//! - `lower`: an OpenAI filter checked against a registry and lowered to [`Cond`], a small
//!   Qdrant-level condition tree that each backend renders in its own form.
//! - `qdrant_json`: [`Cond`] as Qdrant's documented JSON filter, which qdrant-edge reads.

mod lower;
mod openai;
mod qdrant_json;
mod registry;

pub use lower::{Cond, attribute_path, lower};
pub use openai::{AttributeFilter, ComparisonOp, CompoundOp, FilterValue};
pub use qdrant_json::to_qdrant_json;
pub use registry::AttributeRegistry;
