//! Ownership on the files and vector store routes (the rule is [`Access`]'s): the caller's
//! access, and the file or store of a path when the caller may read, or change, it.
//!
//! What a caller may not read is answered exactly as a missing object (404), so the ids of other
//! keys' objects reveal nothing. A shared object that a key reads but may not change (a store
//! the server's sources fill, say) is a 403.

use axum::Extension;
use nfai_retrieval::RetrievalError;
use nfai_retrieval::records::{FileRecord, StoreRecord};
use nfai_retrieval::service::{Access, RetrievalService};

use crate::auth::Caller;
use crate::error::ApiError;

/// What a route does with the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Change,
}

/// The access of the request's caller (a request without one is a server without keys).
pub fn access(caller: Option<Extension<Caller>>) -> Access {
    caller.map(|Extension(c)| c).unwrap_or_default().access()
}

fn check(
    access: &Access,
    owner: Option<&str>,
    need: Need,
    missing: RetrievalError,
) -> Result<(), ApiError> {
    if !access.reads(owner) {
        return Err(missing.into());
    }
    if need == Need::Change && !access.writes(owner) {
        return Err(ApiError::forbidden(
            "This object is shared by the server: an API key may read it but not change it; use the admin token.",
        ));
    }
    Ok(())
}

/// The file `id`, if the caller may do `need` with it.
pub async fn file(
    service: &RetrievalService,
    access: &Access,
    id: &str,
    need: Need,
) -> Result<FileRecord, ApiError> {
    let record = service.file(id).await?;
    let missing = RetrievalError::Missing {
        what: "File",
        id: id.to_owned(),
    };
    check(access, record.owner.as_deref(), need, missing)?;
    Ok(record)
}

/// The record of store `id`, if the caller may do `need` with it.
pub async fn store(
    service: &RetrievalService,
    access: &Access,
    id: &str,
    need: Need,
) -> Result<StoreRecord, ApiError> {
    let record = service.store_record(id).await?;
    let missing = RetrievalError::Missing {
        what: "VectorStore",
        id: id.to_owned(),
    };
    check(access, record.owner.as_deref(), need, missing)?;
    Ok(record)
}
