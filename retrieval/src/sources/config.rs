//! `[[retrieval.sources]]`: one PostgreSQL query indexed into one vector store.

use serde::Deserialize;

/// Attributes a source may set (OpenAI allows 16 per file; nfai adds `source`).
pub const MAX_ATTRIBUTE_COLUMNS: usize = 15;

/// One source, as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Names the source: file ids are `<name>:<row id>`. Letters, digits, `_` and `-`.
    pub name: String,
    /// The vector store's id or name (a store with that name is created when none exists).
    pub vector_store: String,
    /// Environment variable holding this source's database URL [default: the `[database]` URL].
    #[serde(default)]
    pub database_url_env: Option<String>,
    /// A SELECT returning the row id, `updated_at`, the text and attribute columns. It may use
    /// `$1..$n`, bound to `params` (as text; cast in the query where another type is needed).
    pub sql: String,
    #[serde(default)]
    pub params: Vec<String>,
    /// The row id column [default: id].
    #[serde(default = "default_id")]
    pub id_column: String,
    /// The last-change column [default: updated_at].
    #[serde(default = "default_updated_at")]
    pub updated_at_column: String,
    /// Columns joined (one per line) into the file's text.
    pub text_columns: Vec<String>,
    /// Columns that become the file's attributes.
    #[serde(default)]
    pub attribute_columns: Vec<String>,
    /// A soft-delete column: a row where it is set is removed from the store. Without one,
    /// deleted rows are found by comparing the query's ids with the store's (a key-set diff).
    #[serde(default)]
    pub deleted_at_column: Option<String>,
    /// Seconds between automatic syncs [default: none, only on request].
    #[serde(default)]
    pub interval_secs: Option<u64>,
    /// How far behind its checkpoint a sync starts re-reading, so rows committed late with an
    /// earlier `updated_at` are not missed [default: 60].
    #[serde(default = "default_lag")]
    pub lag_secs: u64,
    /// Rows read per page [default: 500].
    #[serde(default = "default_batch")]
    pub batch_rows: u32,
}

fn default_id() -> String {
    "id".into()
}
fn default_updated_at() -> String {
    "updated_at".into()
}
fn default_lag() -> u64 {
    60
}
fn default_batch() -> u32 {
    500
}

/// A column name nfai may quote into SQL: ASCII letters, digits and `_`, not leading digit.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

impl SourceConfig {
    /// Checks names and sizes; each message names the source and the field.
    pub fn validate(&self) -> Result<(), String> {
        let err = |field: &str, why: String| {
            Err(format!("retrieval.sources `{}`: {field} {why}", self.name))
        };
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return err("name", "must be 1..=64 letters, digits, `_` or `-`".into());
        }
        if self.vector_store.trim().is_empty() {
            return err("vector_store", "must not be empty".into());
        }
        if self.sql.trim().is_empty() {
            return err("sql", "must not be empty".into());
        }
        if self.text_columns.is_empty() {
            return err("text_columns", "must name at least one column".into());
        }
        if self.attribute_columns.len() > MAX_ATTRIBUTE_COLUMNS {
            return err(
                "attribute_columns",
                format!("may name at most {MAX_ATTRIBUTE_COLUMNS} columns"),
            );
        }
        let columns = [&self.id_column, &self.updated_at_column]
            .into_iter()
            .chain(&self.text_columns)
            .chain(&self.attribute_columns)
            .chain(self.deleted_at_column.as_ref());
        for c in columns {
            if !is_identifier(c) {
                return err("columns", format!("`{c}` is not a plain column name"));
            }
        }
        if self.attribute_columns.iter().any(|c| c == "source") {
            return err(
                "attribute_columns",
                "must not name `source` (nfai sets it)".into(),
            );
        }
        if self.batch_rows == 0 || self.batch_rows > 10_000 {
            return err("batch_rows", "must be 1..=10000".into());
        }
        if self.interval_secs == Some(0) {
            return err("interval_secs", "must be at least 1".into());
        }
        if let Some(var) = &self.database_url_env
            && var.is_empty()
        {
            return err("database_url_env", "must not be empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SourceConfig {
        serde_json::from_value(serde_json::json!({
            "name": "tickets",
            "vector_store": "crm",
            "sql": "SELECT id, subject, updated_at FROM tickets",
            "text_columns": ["subject"],
        }))
        .unwrap()
    }

    #[test]
    fn defaults_fill_in_and_bad_names_are_refused() {
        let s = source();
        assert_eq!(
            (s.id_column.as_str(), s.lag_secs, s.batch_rows),
            ("id", 60, 500)
        );
        assert!(s.validate().is_ok());
        let mut bad = s.clone();
        bad.text_columns = vec!["subject; DROP TABLE x".into()];
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("not a plain column name")
        );
        let mut bad = s;
        bad.name = "a b".into();
        assert!(bad.validate().unwrap_err().contains("name"));
    }
}
