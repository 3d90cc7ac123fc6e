//! The pool's settings: where to connect, how many connections, how long to wait, how to check
//! a returned connection, and how statements are sent.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::error::PgError;

/// How statements reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatementMode {
    /// Named statements prepared once per connection and cached (fastest on a direct connection;
    /// not through PgBouncer in transaction mode, which has no prepared statements in 1.18).
    #[default]
    Prepared,
    /// Unnamed statements with the parameter types given (`query_typed`): one round trip, no
    /// server-side state, so it works through PgBouncer in transaction mode.
    Unnamed,
    /// Each query prepared and run inside its own transaction, so the statement lives and dies on
    /// one server connection even behind a transaction-mode PgBouncer.
    Transaction,
}

impl StatementMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepared => "prepared",
            Self::Unnamed => "unnamed",
            Self::Transaction => "transaction",
        }
    }
}

impl FromStr for StatementMode {
    type Err = PgError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "prepared" => Ok(Self::Prepared),
            "unnamed" => Ok(Self::Unnamed),
            "transaction" => Ok(Self::Transaction),
            other => Err(PgError::Config(format!(
                "statement_mode must be \"prepared\", \"unnamed\" or \"transaction\", got {other:?}"
            ))),
        }
    }
}

/// How a connection is checked when it comes back out of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recycling {
    /// Whether the client saw its connection close: a connection the server ended (a
    /// restart, `pg_terminate_backend`, an idle timeout) is replaced at checkout, with no round
    /// trip. The default.
    #[default]
    Fast,
    /// Also a round trip (an empty statement) before each reuse, for networks that drop
    /// connections silently (no close ever reaches the client); it halves the rate of short
    /// queries.
    Verified,
}

impl FromStr for Recycling {
    type Err = PgError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fast" => Ok(Self::Fast),
            "verified" => Ok(Self::Verified),
            other => Err(PgError::Config(format!(
                "recycling must be \"fast\" or \"verified\", got {other:?}"
            ))),
        }
    }
}

/// Everything [`super::PgPool::connect`] needs.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://…` (never shown by `Debug`).
    pub url: String,
    /// Connections in the pool.
    pub max_size: usize,
    /// Longest wait for a free connection before [`PgError::Exhausted`].
    pub wait_timeout: Duration,
    /// Longest time to open a new connection.
    pub create_timeout: Duration,
    /// Longest time for the recycling check of a returned connection.
    pub recycle_timeout: Duration,
    pub statement_mode: StatementMode,
    pub recycling: Recycling,
    /// `application_name` the server shows for these connections.
    pub application_name: String,
}

impl PgConfig {
    /// Defaults for everything but the URL: 8 connections, 2 s wait, 5 s create, 2 s recycle,
    /// prepared statements, fast recycling.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_size: 8,
            wait_timeout: Duration::from_secs(2),
            create_timeout: Duration::from_secs(5),
            recycle_timeout: Duration::from_secs(2),
            statement_mode: StatementMode::default(),
            recycling: Recycling::default(),
            application_name: "nfai".to_owned(),
        }
    }

    /// Checks the ranges; the URL itself is parsed by [`super::PgPool::connect`].
    pub fn validate(&self) -> Result<(), PgError> {
        if self.max_size == 0 {
            return Err(PgError::Config("max_connections must be at least 1".into()));
        }
        for (name, d) in [
            ("wait_timeout", self.wait_timeout),
            ("create_timeout", self.create_timeout),
            ("recycle_timeout", self.recycle_timeout),
        ] {
            if d.is_zero() {
                return Err(PgError::Config(format!("{name} must be above zero")));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &"<redacted>")
            .field("max_size", &self.max_size)
            .field("wait_timeout", &self.wait_timeout)
            .field("create_timeout", &self.create_timeout)
            .field("recycle_timeout", &self.recycle_timeout)
            .field("statement_mode", &self.statement_mode)
            .field("recycling", &self.recycling)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_unknown_names_are_refused() {
        assert_eq!(
            "unnamed".parse::<StatementMode>().ok(),
            Some(StatementMode::Unnamed)
        );
        assert_eq!("fast".parse::<Recycling>().ok(), Some(Recycling::Fast));
        let err = "session"
            .parse::<StatementMode>()
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("statement_mode")));
    }

    #[test]
    fn debug_hides_the_url_and_zero_sizes_are_refused() {
        let mut c = PgConfig::new("postgres://u:secret@h/db");
        assert!(!format!("{c:?}").contains("secret"));
        c.max_size = 0;
        assert!(c.validate().is_err());
    }
}
