//! The OpenAI file object.

use nfai_retrieval::records::FileRecord;
use serde_json::{Value, json};

/// `{"object": "file", …}`.
pub fn file(f: FileRecord) -> Value {
    json!({
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": f.created_at,
        "expires_at": null,
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "status_details": null,
    })
}
