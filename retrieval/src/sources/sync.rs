//! One sync pass of a source: pages of rows after the checkpoint (minus the lag), each row
//! upserted as the store file `<source>:<row id>` (skipped when its text and attributes are
//! unchanged) or removed when deleted, several rows of a page at once and at the pace of
//! ingestion (a row waits for room in its queue), the checkpoint saved after every page; then,
//! without a `deleted_at` column, a key-set diff removes the files whose rows are gone.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use serde_json::{Map, Value};

use super::checkpoint::{Checkpoint, CheckpointDir};
use super::config::SourceConfig;
use super::query::{IdKind, SourceQuery, SourceRow};
use super::status::Progress;
use crate::error::RetrievalError;
use crate::pg::{Param, PgError, PgPool, ToSql, Type};
use crate::records::FileRecord;
use crate::service::{AddFile, RetrievalService, now};

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The database (or the store) cannot answer now: pause, then resume from the checkpoint.
    #[error("{0}")]
    Unavailable(String),
    /// The source cannot work as configured (its query fails, a column is missing): the
    /// database's own message.
    #[error("{0}")]
    Failed(String),
}

impl From<PgError> for SyncError {
    fn from(e: PgError) -> Self {
        if e.is_retryable() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Failed(e.to_string())
        }
    }
}

impl From<RetrievalError> for SyncError {
    fn from(e: RetrievalError) -> Self {
        match e {
            RetrievalError::Unavailable(_) | RetrievalError::Timeout(_) => {
                Self::Unavailable(e.to_string())
            }
            other => Self::Failed(other.to_string()),
        }
    }
}

impl From<std::io::Error> for SyncError {
    fn from(e: std::io::Error) -> Self {
        Self::Failed(format!("checkpoint: {e}"))
    }
}

/// The file id of a source row.
pub fn file_id(source: &str, row_id: &str) -> String {
    format!("{source}:{row_id}")
}

/// The file name of a source row.
pub fn filename(source: &str, row_id: &str) -> String {
    let safe: String = row_id
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{source}-{safe}.txt")
}

/// The id of the store a source writes to: see [`RetrievalService::shared_store`].
pub async fn resolve_store(service: &RetrievalService, name: &str) -> Result<String, SyncError> {
    Ok(service.shared_store(name).await?)
}

fn micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

fn from_micros(us: i64) -> SystemTime {
    if us >= 0 {
        UNIX_EPOCH + Duration::from_micros(us.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
    }
}

/// Plans the source's statements from the columns its query returns now.
pub async fn plan(source: &SourceConfig, pool: &PgPool) -> Result<SourceQuery, SyncError> {
    let mut conn = pool.get().await?;
    let columns = conn
        .describe(&format!(
            "SELECT * FROM ({}) AS src",
            source.sql.trim().trim_end_matches(';')
        ))
        .await?;
    SourceQuery::plan(source, &columns).map_err(SyncError::Failed)
}

/// Reads the rows of `source` with the given ids now (deleted rows come back marked, missing
/// ones do not come back).
pub async fn read_rows(
    source: &SourceConfig,
    pool: &PgPool,
    plan: &SourceQuery,
    ids: &[String],
) -> Result<Vec<SourceRow>, SyncError> {
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut params: Vec<Param<'_>> = source
        .params
        .iter()
        .map(|p| (p as &(dyn ToSql + Sync), Type::TEXT))
        .collect();
    params.push((&ids, Type::TEXT_ARRAY));
    let rows = pool.query(&plan.rows_sql, &params).await?;
    rows.iter()
        .map(|r| plan.read(r).map_err(SyncError::Failed))
        .collect()
}

/// Rows of a page written at once: their database round trips overlap, so that writing rows
/// keeps up with embedding them.
const ROW_WRITERS: usize = 8;

/// 1900-01-01: the start of a first sync.
const BEGINNING_US: i64 = -2_208_988_800_000_000;

/// Runs one pass of `source` into store `store_id`.
pub async fn sync_once(
    source: &SourceConfig,
    pool: &PgPool,
    service: &RetrievalService,
    store_id: &str,
    checkpoints: &CheckpointDir,
    progress: &Progress,
) -> Result<(), SyncError> {
    let plan = plan(source, pool).await?;
    let saved = checkpoints.load(&source.name).await?;
    let lag_us = i64::try_from(source.lag_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    let (mut ts_us, mut last_id, mut rows_total): (i64, Option<(i64, String)>, u64) = match &saved {
        Some(c) => (c.updated_at_us.saturating_sub(lag_us), None, c.rows_total),
        None => (BEGINNING_US, None, 0),
    };
    let limit = i64::from(source.batch_rows);
    loop {
        let ts = from_micros(ts_us);
        let (id_int, id_text): (i64, String) = match &last_id {
            Some((i, t)) => (*i, t.clone()),
            None => (i64::MIN, String::new()),
        };
        let mut params: Vec<Param<'_>> = source
            .params
            .iter()
            .map(|p| (p as &(dyn ToSql + Sync), Type::TEXT))
            .collect();
        params.push((&ts, plan.updated_at_type.clone()));
        match plan.id_kind {
            IdKind::Int => params.push((&id_int, Type::INT8)),
            IdKind::Text => params.push((&id_text, Type::TEXT)),
        }
        params.push((&limit, Type::INT8));
        let rows = pool.query(&plan.page_sql, &params).await?;
        if rows.is_empty() {
            break;
        }
        let full = rows.len() as i64 == limit;
        let rows = rows
            .iter()
            .map(|row| plan.read(row))
            .collect::<Result<Vec<_>, _>>()
            .map_err(SyncError::Failed)?;
        progress.read(rows.len() as u64);
        // The page's rows are distinct files: several are written at once, and the
        // checkpoint moves past the page only once every one of them is.
        let writes: Vec<_> = rows
            .iter()
            .map(|row| write_row(source, service, store_id, row, progress))
            .collect();
        futures::stream::iter(writes)
            .buffer_unordered(ROW_WRITERS)
            .try_collect::<()>()
            .await?;
        if let Some(row) = rows.last() {
            ts_us = micros(row.updated_at);
            last_id = Some((row.id_int.unwrap_or(0), row.id.clone()));
            rows_total += rows.len() as u64;
        }
        let checkpoint = Checkpoint {
            updated_at_us: ts_us,
            id: last_id.as_ref().map(|(_, t)| t.clone()).unwrap_or_default(),
            rows_total,
        };
        checkpoints.save(&source.name, &checkpoint).await?;
        progress.checkpoint(checkpoint);
        if !full {
            break;
        }
    }
    if source.deleted_at_column.is_none() {
        diff_deletes(source, pool, service, store_id, &plan, progress).await?;
    }
    Ok(())
}

/// Upserts or removes one row's store file.
async fn write_row(
    source: &SourceConfig,
    service: &RetrievalService,
    store_id: &str,
    row: &SourceRow,
    progress: &Progress,
) -> Result<(), SyncError> {
    let fid = file_id(&source.name, &row.id);
    if row.deleted {
        if remove(service, store_id, &fid).await? {
            progress.deleted(1);
        }
        return Ok(());
    }
    let mut attributes = row.attributes.clone();
    attributes.insert("source".into(), Value::String(source.name.clone()));
    let changed = upsert(
        service,
        store_id,
        &fid,
        &filename(&source.name, &row.id),
        &row.text,
        attributes,
    )
    .await?;
    if changed {
        progress.upserted(1);
    } else {
        progress.unchanged(1);
    }
    Ok(())
}

/// Removes the store files of this source whose ids the query no longer returns.
async fn diff_deletes(
    source: &SourceConfig,
    pool: &PgPool,
    service: &RetrievalService,
    store_id: &str,
    plan: &SourceQuery,
    progress: &Progress,
) -> Result<(), SyncError> {
    let params: Vec<Param<'_>> = source
        .params
        .iter()
        .map(|p| (p as &(dyn ToSql + Sync), Type::TEXT))
        .collect();
    let rows = pool.query(&plan.ids_sql, &params).await?;
    let mut live = HashSet::with_capacity(rows.len());
    for row in &rows {
        let id: String = row
            .try_get(0)
            .map_err(|e| SyncError::Failed(e.to_string()))?;
        live.insert(file_id(&source.name, &id));
    }
    let prefix = format!("{}:", source.name);
    for f in service.records().list_store_files(store_id).await? {
        if f.file_id.starts_with(&prefix)
            && !live.contains(&f.file_id)
            && remove(service, store_id, &f.file_id).await?
        {
            progress.deleted(1);
        }
    }
    Ok(())
}

/// Writes the row's text and attaches it; `false` when the store already holds the same text
/// and attributes (nothing is re-embedded).
async fn upsert(
    service: &RetrievalService,
    store_id: &str,
    file_id: &str,
    filename: &str,
    text: &str,
    attributes: Map<String, Value>,
) -> Result<bool, SyncError> {
    if let Ok(existing) = service.store_file(store_id, file_id).await
        && existing.attributes == attributes
        && existing.status != crate::records::FileStatus::Failed
        && service
            .blobs()
            .read(file_id)
            .await
            .is_ok_and(|b| b == text.as_bytes())
    {
        return Ok(false);
    }
    let blob = |e: crate::records::BlobError| SyncError::Failed(format!("writing {file_id}: {e}"));
    let mut writer = service
        .blobs()
        .begin(file_id, service.options().max_file_bytes)
        .await
        .map_err(blob)?;
    writer.write(text.as_bytes()).await.map_err(blob)?;
    let bytes = writer.commit().await.map_err(blob)?;
    service
        .records()
        .put_file(FileRecord {
            id: file_id.to_owned(),
            bytes,
            created_at: now(),
            filename: filename.to_owned(),
            purpose: "assistants".into(),
            content_type: Some("text/plain".into()),
            owner: None,
        })
        .await?;
    service
        .add_file_waiting(
            store_id,
            AddFile {
                file_id: file_id.to_owned(),
                attributes,
                chunking_strategy: None,
            },
        )
        .await?;
    Ok(true)
}

/// Detaches and deletes a row's file; `false` when the store did not hold it.
async fn remove(
    service: &RetrievalService,
    store_id: &str,
    file_id: &str,
) -> Result<bool, SyncError> {
    let held = match service.delete_store_file(store_id, file_id).await {
        Ok(()) => true,
        Err(RetrievalError::Missing { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    match service.delete_file(file_id).await {
        Ok(()) | Err(RetrievalError::Missing { .. }) => Ok(held),
        Err(e) => Err(e.into()),
    }
}
