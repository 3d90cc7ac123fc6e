//! The statements a sync runs, built once from the source's config and the columns its query
//! returns. Only column names checked by [`super::config::is_identifier`] are quoted into the
//! SQL; every value (the source's `params`, the keyset position, the page size) is a bound
//! parameter.

use std::time::SystemTime;

use serde_json::{Map, Value};

use super::config::SourceConfig;
use crate::pg::{Row, Type};

/// How the row id is compared in the keyset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// int2/int4/int8, compared as int8.
    Int,
    /// Anything else, compared as text.
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttrKind {
    Int,
    Float,
    Bool,
    Text,
}

/// The page and id-list statements of one source.
#[derive(Debug, Clone)]
pub struct SourceQuery {
    pub page_sql: String,
    pub ids_sql: String,
    /// The rows whose ids are in a text array (the parameter after the source's own), for
    /// fresh reads at search time.
    pub rows_sql: String,
    pub id_kind: IdKind,
    pub updated_at_type: Type,
    attributes: Vec<(String, AttrKind)>,
    texts: usize,
    has_deleted: bool,
}

/// One row read from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    pub id: String,
    pub id_int: Option<i64>,
    pub updated_at: SystemTime,
    pub text: String,
    pub attributes: Map<String, Value>,
    pub deleted: bool,
}

fn q(column: &str) -> String {
    format!("src.\"{column}\"")
}

impl SourceQuery {
    /// Plans the statements from `columns` (name and type of each column the query returns).
    /// A missing column or an `updated_at` that is not a timestamp is an error naming it.
    pub fn plan(source: &SourceConfig, columns: &[(String, Type)]) -> Result<Self, String> {
        let type_of = |c: &str| {
            columns
                .iter()
                .find(|(n, _)| n == c)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| {
                    let names: Vec<_> = columns.iter().map(|(n, _)| n.as_str()).collect();
                    format!(
                        "column `{c}` is not returned by the query of source `{}` (it returns: {})",
                        source.name,
                        names.join(", ")
                    )
                })
        };
        let id_type = type_of(&source.id_column)?;
        let id_kind = if [Type::INT2, Type::INT4, Type::INT8].contains(&id_type) {
            IdKind::Int
        } else {
            IdKind::Text
        };
        let updated_at_type = type_of(&source.updated_at_column)?;
        if updated_at_type != Type::TIMESTAMPTZ && updated_at_type != Type::TIMESTAMP {
            return Err(format!(
                "column `{}` of source `{}` must be a timestamp or timestamptz, not {}",
                source.updated_at_column, source.name, updated_at_type
            ));
        }
        let id_expr = match id_kind {
            IdKind::Int => format!("{}::int8", q(&source.id_column)),
            IdKind::Text => format!("{}::text", q(&source.id_column)),
        };
        let ts = q(&source.updated_at_column);
        let mut select = vec![id_expr.clone(), ts.clone()];
        for c in &source.text_columns {
            type_of(c)?;
            select.push(format!("{}::text", q(c)));
        }
        let mut attributes = Vec::new();
        for c in &source.attribute_columns {
            let t = type_of(c)?;
            let kind = if [Type::INT2, Type::INT4, Type::INT8].contains(&t) {
                select.push(format!("{}::int8", q(c)));
                AttrKind::Int
            } else if [Type::FLOAT4, Type::FLOAT8, Type::NUMERIC].contains(&t) {
                select.push(format!("{}::float8", q(c)));
                AttrKind::Float
            } else if t == Type::BOOL {
                select.push(q(c));
                AttrKind::Bool
            } else {
                select.push(format!("{}::text", q(c)));
                AttrKind::Text
            };
            attributes.push((c.clone(), kind));
        }
        if let Some(d) = &source.deleted_at_column {
            type_of(d)?;
            select.push(format!("({} IS NOT NULL)", q(d)));
        }
        let n = source.params.len();
        let inner = source.sql.trim().trim_end_matches(';');
        let page_sql = format!(
            "SELECT {} FROM ({inner}) AS src WHERE ({ts}, {id_expr}) > (${}, ${}) \
             ORDER BY {ts}, {id_expr} LIMIT ${}",
            select.join(", "),
            n + 1,
            n + 2,
            n + 3
        );
        let ids_sql = format!(
            "SELECT {}::text FROM ({inner}) AS src{}",
            q(&source.id_column),
            source
                .deleted_at_column
                .as_ref()
                .map(|d| format!(" WHERE {} IS NULL", q(d)))
                .unwrap_or_default()
        );
        let rows_sql = format!(
            "SELECT {} FROM ({inner}) AS src WHERE {}::text = ANY(${}::text[])",
            select.join(", "),
            q(&source.id_column),
            n + 1
        );
        Ok(Self {
            page_sql,
            ids_sql,
            rows_sql,
            id_kind,
            updated_at_type,
            attributes,
            texts: source.text_columns.len(),
            has_deleted: source.deleted_at_column.is_some(),
        })
    }

    /// Reads one page row; a NULL text column is skipped, a NULL attribute left out.
    pub fn read(&self, row: &Row) -> Result<SourceRow, String> {
        let err = |e: crate::pg::PgReadError| e.to_string();
        let (id, id_int) = match self.id_kind {
            IdKind::Int => {
                let v: i64 = row.try_get(0).map_err(err)?;
                (v.to_string(), Some(v))
            }
            IdKind::Text => (row.try_get::<_, String>(0).map_err(err)?, None),
        };
        let updated_at: SystemTime = row.try_get(1).map_err(err)?;
        let mut parts = Vec::with_capacity(self.texts);
        for i in 0..self.texts {
            if let Some(t) = row.try_get::<_, Option<String>>(2 + i).map_err(err)?
                && !t.trim().is_empty()
            {
                parts.push(t);
            }
        }
        let mut attributes = Map::new();
        for (j, (name, kind)) in self.attributes.iter().enumerate() {
            let i = 2 + self.texts + j;
            let value = match kind {
                AttrKind::Int => row
                    .try_get::<_, Option<i64>>(i)
                    .map_err(err)?
                    .map(Value::from),
                AttrKind::Float => row
                    .try_get::<_, Option<f64>>(i)
                    .map_err(err)?
                    .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number)),
                AttrKind::Bool => row
                    .try_get::<_, Option<bool>>(i)
                    .map_err(err)?
                    .map(Value::Bool),
                AttrKind::Text => row.try_get::<_, Option<String>>(i).map_err(err)?.map(|s| {
                    // OpenAI attribute strings hold at most 512 characters.
                    Value::String(s.chars().take(512).collect())
                }),
            };
            if let Some(v) = value {
                attributes.insert(name.clone(), v);
            }
        }
        let deleted = if self.has_deleted {
            row.try_get::<_, bool>(2 + self.texts + self.attributes.len())
                .map_err(err)?
        } else {
            false
        };
        Ok(SourceRow {
            id,
            id_int,
            updated_at,
            text: parts.join("\n"),
            attributes,
            deleted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_statement_binds_every_value_and_names_missing_columns() {
        let source: SourceConfig = serde_json::from_value(serde_json::json!({
            "name": "t", "vector_store": "s",
            "sql": "SELECT * FROM tickets WHERE kind <> $1;", "params": ["email"],
            "text_columns": ["subject"], "attribute_columns": ["prio"],
            "deleted_at_column": "deleted_at",
        }))
        .unwrap();
        let cols = |extra: &[(&str, Type)]| {
            let mut v = vec![
                ("id".to_owned(), Type::INT8),
                ("updated_at".to_owned(), Type::TIMESTAMPTZ),
                ("subject".to_owned(), Type::TEXT),
                ("deleted_at".to_owned(), Type::TIMESTAMPTZ),
            ];
            v.extend(extra.iter().map(|(n, t)| ((*n).to_owned(), t.clone())));
            v
        };
        let plan = SourceQuery::plan(&source, &cols(&[("prio", Type::INT4)])).unwrap();
        assert_eq!(plan.id_kind, IdKind::Int);
        assert!(
            plan.page_sql
                .contains("FROM (SELECT * FROM tickets WHERE kind <> $1) AS src")
        );
        assert!(plan.page_sql.contains("> ($2, $3)") && plan.page_sql.ends_with("LIMIT $4"));
        assert!(
            plan.rows_sql
                .ends_with("src.\"id\"::text = ANY($2::text[])")
        );
        let err = SourceQuery::plan(&source, &cols(&[])).unwrap_err();
        assert!(err.contains("`prio`") && err.contains("subject"), "{err}");
    }
}
