//! What a pooled database call can fail with. The router maps `Exhausted` and `Unavailable` to
//! 503 (with `Retry-After`), `Query` to the caller's failure with the database's own message.

use std::time::Duration;

/// A pooled PostgreSQL failure.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// Every connection stayed busy for the whole wait.
    #[error("database pool exhausted: no connection free within {}ms", waited.as_millis())]
    Exhausted { waited: Duration },
    /// The server cannot be reached or dropped the connection; the cause is kept.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The server refused a statement (a missing column, a bad type); `code` is its SQLSTATE.
    #[error("database error {code}: {message}")]
    Query { code: String, message: String },
    /// A setting that cannot work: a bad value, or a server that refuses the login or has no
    /// such database (retrying will not help).
    #[error("database config: {0}")]
    Config(String),
}

impl PgError {
    /// Whether trying again later may succeed (pool or server), as opposed to a statement the
    /// server refused.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Exhausted { .. } | Self::Unavailable(_))
    }

    /// Sorts a tokio-postgres error: a server-side error (with SQLSTATE) is a query error,
    /// anything on the connection is unavailability.
    pub(crate) fn from_pg(e: &tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) if !is_connection_class(db.code().code()) => Self::Query {
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
            },
            Some(db) => Self::Unavailable(db.message().to_owned()),
            None => Self::Unavailable(error_chain(e)),
        }
    }
}

/// SQLSTATE classes that mean the server or the connection is going away, not that the
/// statement is wrong: 08 (connection), 57 (operator intervention: shutdown, terminated),
/// 53 (insufficient resources).
fn is_connection_class(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57") || code.starts_with("53")
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
