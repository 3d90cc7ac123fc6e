//! The retrieval records and file bytes in PostgreSQL ([`PgRecords`], [`PgBlobs`]), used when
//! a database is configured so that replicas share them; [`PgHandle`] is the pool with the
//! schema made ready once.

mod blobs;
mod records;
mod schema;

pub use blobs::{PART_BYTES, PgBlobs};
pub use records::PgRecords;
pub use schema::PgHandle;
