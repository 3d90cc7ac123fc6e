//! [`Access`]: which files and vector stores a caller may read and change.
//!
//! Each file and store records its owner: the API key that created it, or `None` for what the
//! admin token, the server's own sources (`[[retrieval.sources]]`) or a server without keys
//! created. A key reads what it owns and what nobody owns (the shared stores, such as the CRM's
//! synced records), and changes only what it owns. The admin token reads and changes
//! everything. On a server without keys every caller is the same owner, `None`, and so
//! changes everything too.

/// What one caller may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The admin token: everything.
    All,
    /// A caller that creates objects owned by this owner (`None`: no key).
    Owner(Option<String>),
}

impl Access {
    /// Whether the caller may see and use (search, read) an object of `owner`.
    pub fn reads(&self, owner: Option<&str>) -> bool {
        owner.is_none() || self.writes(owner)
    }

    /// Whether the caller may change or delete an object of `owner`.
    pub fn writes(&self, owner: Option<&str>) -> bool {
        match self {
            Self::All => true,
            Self::Owner(me) => me.as_deref() == owner,
        }
    }

    /// The owner recorded on what this caller creates.
    pub fn owner(&self) -> Option<String> {
        match self {
            Self::All => None,
            Self::Owner(me) => me.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_their_own_and_shared_objects_and_change_only_their_own() {
        let a = Access::Owner(Some("key-a".into()));
        assert!(a.reads(Some("key-a")) && a.writes(Some("key-a")));
        assert!(a.reads(None) && !a.writes(None));
        assert!(!a.reads(Some("key-b")) && !a.writes(Some("key-b")));
        assert_eq!(a.owner().as_deref(), Some("key-a"));
    }

    #[test]
    fn the_admin_token_and_a_server_without_keys_change_shared_objects() {
        assert!(Access::All.reads(Some("key-b")) && Access::All.writes(Some("key-b")));
        assert!(Access::All.writes(None) && Access::All.owner().is_none());
        let anonymous = Access::Owner(None);
        assert!(anonymous.reads(None) && anonymous.writes(None));
        assert!(!anonymous.reads(Some("key-a")));
    }
}
