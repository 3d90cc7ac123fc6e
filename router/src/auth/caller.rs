//! [`Caller`]: who sent the request, set as a request extension by the API's key check before
//! any handler runs (and copied onto the response's extensions for the access log).

use std::sync::Arc;

use crate::auth::key::KeyRecord;

/// The authenticated identity of a request.
///
/// Read it with `Option<Extension<Caller>>` (or `req.extensions().get::<Caller>()`). Ownership
/// rule for what callers create (files, vector stores, stored responses): a key sees what it
/// created (owner = [`Caller::owner`]); the admin token sees everything ([`Caller::admin`]).
/// Files and stores that no key owns (the admin token's, the server's sources') are shared:
/// every key reads them, only the admin token changes them ([`Caller::access`]).
/// When the server takes requests without keys, every caller is [`Caller::anonymous`] and they
/// all share the owner `None`.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The key's public id (`key-…`, or `file-<name>` for a keys-file key); `None` for the
    /// admin token and for anonymous callers.
    pub key_id: Option<Arc<str>>,
    /// The request carried the admin token.
    pub admin: bool,
    /// The key itself (its model list and limits).
    pub key: Option<Arc<KeyRecord>>,
}

impl Caller {
    /// A caller of a server that takes requests without keys.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// The admin token's caller: sees everything.
    pub fn admin() -> Self {
        Self {
            admin: true,
            ..Self::default()
        }
    }

    /// A key's caller.
    pub fn with_key(key: Arc<KeyRecord>) -> Self {
        Self {
            key_id: Some(key.id.as_str().into()),
            admin: false,
            key: Some(key),
        }
    }

    /// The owner recorded on what this caller creates.
    pub fn owner(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// What this caller may do with files and vector stores.
    pub fn access(&self) -> nfai_retrieval::service::Access {
        if self.admin {
            nfai_retrieval::service::Access::All
        } else {
            nfai_retrieval::service::Access::Owner(self.owner().map(str::to_owned))
        }
    }

    /// Whether this caller may see something owned by `owner`.
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        self.admin || self.owner() == owner
    }
}
