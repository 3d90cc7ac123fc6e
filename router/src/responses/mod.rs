//! What the Responses API needs beneath its HTTP layer: the prompt of an answer grounded in
//! retrieved chunks ([`prompt`]), the mapping of the citation markers the model writes into
//! `file_citation` annotations ([`cite`]), and the stored responses ([`store`]).

pub mod cite;
pub mod prompt;
pub mod store;
