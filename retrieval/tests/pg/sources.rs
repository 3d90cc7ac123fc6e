//! `[[retrieval.sources]]` against the demo CRM on the local server, into a real retrieval
//! service (records and blobs on disk, qdrant-edge, multilingual-e5-small): rows become store
//! files, syncs are incremental and idempotent, late commits within the lag are read, soft
//! deletes and key-set diffs remove files, and a failing source fails alone.

use std::sync::Arc;
use std::time::Duration;

use nfai_retrieval::pg::StatementMode;
use nfai_retrieval::records::{BlobDir, DirRecords};
use nfai_retrieval::service::{RetrievalService, SearchRequest, ServiceOptions};
use nfai_retrieval::sources::{CheckpointDir, SourceConfig, SourceRunner, SyncState};
use nfai_retrieval::{EdgeStore, EdgeStoreOptions, RetrievalError};

use crate::embed::E5Embed;
use crate::support::{ScratchDb, in_scratch_dir, pool};

pub fn service(dir: &std::path::Path) -> RetrievalService {
    RetrievalService::start(
        Arc::new(DirRecords::open(dir.join("records")).unwrap()),
        Arc::new(BlobDir::open(dir.join("files")).unwrap()),
        Arc::new(EdgeStore::new(dir.join("vector_stores"), EdgeStoreOptions::default()).unwrap()),
        Arc::new(E5Embed::load()),
        ServiceOptions::default(),
    )
}

pub async fn load_demo(db: &ScratchDb, rows: u64) {
    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    nfai_crm_demo::load(&client, rows, 42, false, |_, _, _| {})
        .await
        .unwrap();
    drop(client);
    task.await.unwrap().unwrap();
}

pub fn source(value: serde_json::Value) -> SourceConfig {
    let s: SourceConfig = serde_json::from_value(value).unwrap();
    s.validate().unwrap();
    s
}

/// Waits until no file of the store is still being ingested.
pub async fn ingested(service: &RetrievalService, store: &str) -> u64 {
    for _ in 0..1200 {
        let view = service.store(store).await.unwrap();
        if view.file_counts.in_progress == 0 {
            assert_eq!(view.file_counts.failed, 0);
            return view.file_counts.completed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ingestion did not finish");
}

async fn store_id(service: &RetrievalService, name: &str) -> String {
    nfai_retrieval::sources::resolve_store(service, name)
        .await
        .unwrap()
}

#[test]
fn sources_starting_together_share_one_store_and_never_a_keys() {
    in_scratch_dir(|dir| async move {
        let service = service(&dir);
        // A key's store of the same name is not a source's.
        let owned = service
            .create_store(nfai_retrieval::service::CreateStore {
                name: Some("crm".into()),
                owner: Some("key-a".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .record
            .id;
        let resolved = futures::future::join_all((0..4).map(|_| store_id(&service, "crm"))).await;
        assert!(resolved.iter().all(|id| *id == resolved[0]), "{resolved:?}");
        assert_ne!(resolved[0], owned);
        let shared: Vec<_> = service
            .records()
            .list_stores()
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.owner.is_none())
            .collect();
        assert_eq!(shared.len(), 1, "{shared:?}");
        assert_eq!(store_id(&service, &resolved[0]).await, resolved[0]);
    });
}

#[test]
fn rows_sync_incrementally_with_updates_late_commits_and_soft_deletes() {
    in_scratch_dir(|dir| async move {
        let db = ScratchDb::new("sources");
        load_demo(&db, 1_000).await;
        let service = service(&dir);
        let tickets = source(serde_json::json!({
            "name": "tickets", "vector_store": "crm",
            "sql": "SELECT t.id, t.subject, t.body, t.status, t.priority, t.lang, t.customer_id, \
                    t.updated_at, t.deleted_at FROM tickets t WHERE t.id <= $1::int8",
            "params": ["30"],
            "text_columns": ["subject", "body"],
            "attribute_columns": ["status", "priority", "lang", "customer_id"],
            "deleted_at_column": "deleted_at",
            "batch_rows": 7,
        }));
        let checkpoints = CheckpointDir::open(dir.join("sources")).unwrap();
        let runner = SourceRunner::start(
            vec![(tickets, pool(&db.url(), StatementMode::Prepared, 2))],
            service.clone(),
            checkpoints.clone(),
        );

        let s = runner.sync_and_wait("tickets").await.unwrap();
        assert_eq!(s.state, SyncState::Idle, "{s:?}");
        assert_eq!((s.rows_read, s.upserted, s.deleted), (30, 30, 0));
        let store = store_id(&service, "crm").await;
        assert_eq!(ingested(&service, &store).await, 30);
        let f = service.store_file(&store, "tickets:7").await.unwrap();
        assert_eq!(f.attributes["source"], "tickets");
        assert!(f.attributes["customer_id"].is_number());
        assert_eq!(
            service.file("tickets:7").await.unwrap().filename,
            "tickets-7.txt"
        );
        let subject = db.sql("SELECT subject || ' ' || body FROM tickets WHERE id = 7");
        let hits = service
            .search(
                &store,
                SearchRequest {
                    queries: vec![subject],
                    filter: None,
                    max_num_results: 5,
                    score_threshold: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(hits[0].payload.file_id, "tickets:7");
        let saved = checkpoints.load("tickets").await.unwrap().unwrap();
        assert_eq!(saved.rows_total, 30);

        // Nothing changed: rows re-read within the lag are left as they are.
        let s = runner.sync_and_wait("tickets").await.unwrap();
        assert_eq!((s.upserted, s.deleted), (0, 0), "{s:?}");

        // An update (the trigger moves updated_at), a row committed late with an updated_at
        // before the checkpoint but within the lag, and a soft delete.
        db.sql(
        "UPDATE tickets SET subject = 'Máy in kẹt giấy liên tục ở chi nhánh Đà Nẵng' WHERE id = 7",
    );
        db.sql(
        "UPDATE tickets SET body = 'Late: the courier lost the parcel', \
         updated_at = (SELECT max(updated_at) FROM tickets WHERE id <= 30 AND id <> 7) - interval '30 seconds' \
         WHERE id = 8",
    );
        db.sql("UPDATE tickets SET deleted_at = now() WHERE id = 9");
        let s = runner.sync_and_wait("tickets").await.unwrap();
        assert_eq!((s.upserted, s.deleted), (2, 1), "{s:?}");
        ingested(&service, &store).await;
        let text = service.store_file_text(&store, "tickets:7").await.unwrap();
        assert!(text.contains("kẹt giấy"), "{text}");
        let text = service.store_file_text(&store, "tickets:8").await.unwrap();
        assert!(text.contains("courier lost"), "{text}");
        assert!(matches!(
            service.store_file(&store, "tickets:9").await,
            Err(RetrievalError::Missing { .. })
        ));
        assert_eq!(service.store(&store).await.unwrap().file_counts.total, 29);
    });
}

#[test]
fn a_key_set_diff_removes_gone_rows_and_a_failing_source_fails_alone() {
    in_scratch_dir(|dir| async move {
        let db = ScratchDb::new("diff");
        load_demo(&db, 1_000).await;
        let service = service(&dir);
        let customers = source(serde_json::json!({
            "name": "customers", "vector_store": "crm",
            "sql": "SELECT id, name, city, tier, updated_at FROM customers WHERE id <= 6",
            "text_columns": ["name", "city"], "attribute_columns": ["tier"],
        }));
        let broken = source(serde_json::json!({
            "name": "broken", "vector_store": "crm",
            "sql": "SELECT id, subjekt, updated_at FROM tickets",
            "text_columns": ["subjekt"],
        }));
        let runner = SourceRunner::start(
            vec![
                (customers, pool(&db.url(), StatementMode::Unnamed, 2)),
                (broken, pool(&db.url(), StatementMode::Unnamed, 2)),
            ],
            service.clone(),
            CheckpointDir::open(dir.join("sources")).unwrap(),
        );
        let s = runner.sync_and_wait("broken").await.unwrap();
        assert_eq!(s.state, SyncState::Failed);
        let cause = s.cause.unwrap();
        assert!(
            cause.contains("subjekt") && cause.contains("does not exist"),
            "{cause}"
        );

        let s = runner.sync_and_wait("customers").await.unwrap();
        assert_eq!((s.state, s.upserted), (SyncState::Idle, 6), "{s:?}");
        let store = store_id(&service, "crm").await;
        assert_eq!(ingested(&service, &store).await, 6);

        // A hard delete: without a deleted_at column the key-set diff finds it.
        db.sql("DELETE FROM customers WHERE id = 3 AND NOT EXISTS (SELECT 1 FROM contacts WHERE customer_id = 3) AND NOT EXISTS (SELECT 1 FROM deals WHERE customer_id = 3) AND NOT EXISTS (SELECT 1 FROM tickets WHERE customer_id = 3) AND NOT EXISTS (SELECT 1 FROM activities WHERE customer_id = 3)");
        db.sql("UPDATE customers SET tier = 'platinum' WHERE id = 3");
        db.sql("DELETE FROM activities WHERE customer_id = 4; DELETE FROM tickets WHERE customer_id = 4; DELETE FROM deals WHERE customer_id = 4; DELETE FROM contacts WHERE customer_id = 4; DELETE FROM customers WHERE id = 4");
        let s = runner.sync_and_wait("customers").await.unwrap();
        assert_eq!(s.deleted, 1, "{s:?}");
        assert!(service.store_file(&store, "customers:4").await.is_err());
        assert!(service.store_file(&store, "customers:3").await.is_ok());
        assert_eq!(
            runner.sources_of_store(&store).await,
            ["broken", "customers"]
        );
    });
}
