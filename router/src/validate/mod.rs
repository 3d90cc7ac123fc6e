//! The protocol-neutral request types that every backend accepts ([`request`]), and the checks
//! that make them from what a protocol sent ([`checks`]).
//!
//! Each API layer parses its own wire types, then converts them once into these types through
//! the checks, which name the field at fault in a [`FieldError`]. The types carry the request's
//! deadline explicitly, so a backend never reads it from anywhere else.

pub mod checks;
pub mod field;
pub mod request;
pub mod structured;

pub use checks::*;
pub use request::*;
