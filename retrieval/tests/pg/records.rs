//! The retrieval records and file bytes in PostgreSQL: every record kind round-trips, a
//! store's delete takes its store files and batches, ingestion claims hold one holder per
//! lease, bytes commit whole in parts (never a mix of two uploads), and the lot works through
//! PgBouncer in transaction mode. Two services sharing the database (replicas) see each
//! other's files and stores, and a job is ingested once.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use nfai_retrieval::pg::{PgPool, StatementMode};
use nfai_retrieval::records::{
    BatchRecord, BlobError, Blobs, FileRecord, FileStatus, PART_BYTES, PgBlobs, PgHandle,
    PgRecords, Records, StoreFileRecord, StoreRecord,
};
use nfai_retrieval::service::{
    AddFile, CreateStore, RetrievalService, SearchRequest, ServiceOptions,
};
use nfai_retrieval::{EdgeStore, EdgeStoreOptions, VectorStore};
use serde_json::{Map, json};

use crate::embed::E5Embed;
use crate::sources::ingested;
use crate::support::{Bouncer, ScratchDb, in_scratch_dir, pool};

fn file(id: &str) -> FileRecord {
    FileRecord {
        id: id.into(),
        bytes: 3,
        created_at: 1,
        filename: format!("{id}.txt"),
        purpose: "assistants".into(),
        content_type: None,
        owner: Some("key-a".into()),
    }
}

fn store(id: &str) -> StoreRecord {
    StoreRecord {
        id: id.into(),
        name: Some("crm".into()),
        created_at: 1,
        last_active_at: 2,
        metadata: Map::new(),
        expires_after: None,
        model: "multilingual-e5-small".into(),
        dimension: 384,
        chunking_strategy: json!({"type": "static"}),
        owner: None,
    }
}

fn store_file(store: &str, file: &str, status: FileStatus, revision: u64) -> StoreFileRecord {
    StoreFileRecord {
        store_id: store.into(),
        file_id: file.into(),
        created_at: 1,
        status,
        last_error: None,
        usage_bytes: 0,
        chunks: 0,
        attributes: Map::new(),
        chunking_strategy: json!({"type": "static"}),
        batch_id: None,
        revision,
    }
}

/// Every record kind against `pool`'s database.
async fn round_trip(pool: PgPool) {
    let r = PgRecords::new(PgHandle::new(pool));
    r.put_file(file("file-1")).await.unwrap();
    let mut renamed = file("file-2");
    r.put_file(renamed.clone()).await.unwrap();
    renamed.filename = "b.txt".into();
    r.put_file(renamed.clone()).await.unwrap();
    assert_eq!(r.get_file("file-2").await.unwrap(), Some(renamed));
    assert_eq!(r.list_files().await.unwrap().len(), 2);
    assert!(r.delete_file("file-1").await.unwrap());
    assert!(!r.delete_file("file-1").await.unwrap());
    assert_eq!(r.get_file("file-1").await.unwrap(), None);
    assert!(r.put_file(file("../etc")).await.is_err());
    assert_eq!(r.get_file("../etc").await.unwrap(), None);

    r.put_store(store("vs_1")).await.unwrap();
    r.put_store(store("vs_2")).await.unwrap();
    assert_eq!(r.get_store("vs_1").await.unwrap(), Some(store("vs_1")));
    assert_eq!(r.list_stores().await.unwrap().len(), 2);
    for (s, f, status) in [
        ("vs_1", "file-2", FileStatus::InProgress),
        ("vs_1", "src:7", FileStatus::Completed),
        ("vs_2", "file-2", FileStatus::InProgress),
    ] {
        r.put_store_file(store_file(s, f, status, 0)).await.unwrap();
    }
    r.put_store_file(store_file("vs_1", "src:7", FileStatus::InProgress, 1))
        .await
        .unwrap();
    assert_eq!(
        r.get_store_file("vs_1", "src:7").await.unwrap(),
        Some(store_file("vs_1", "src:7", FileStatus::InProgress, 1))
    );
    assert_eq!(r.list_store_files("vs_1").await.unwrap().len(), 2);
    assert_eq!(r.pending_store_files().await.unwrap().len(), 3);
    let batch = BatchRecord {
        id: "vsfb_1".into(),
        store_id: "vs_1".into(),
        created_at: 1,
        file_ids: vec!["file-2".into()],
        cancelled: false,
    };
    r.put_batch(batch.clone()).await.unwrap();
    assert_eq!(r.get_batch("vs_1", "vsfb_1").await.unwrap(), Some(batch));
    assert!(r.delete_store_file("vs_2", "file-2").await.unwrap());
    assert!(!r.delete_store_file("vs_2", "file-2").await.unwrap());

    // A store's delete takes its store files and batches, and only its own.
    r.put_store_file(store_file("vs_2", "file-9", FileStatus::Completed, 0))
        .await
        .unwrap();
    assert!(r.delete_store("vs_1").await.unwrap());
    assert!(!r.delete_store("vs_1").await.unwrap());
    assert!(r.list_store_files("vs_1").await.unwrap().is_empty());
    assert_eq!(r.get_batch("vs_1", "vsfb_1").await.unwrap(), None);
    assert_eq!(r.list_store_files("vs_2").await.unwrap().len(), 1);
    assert!(r.pending_store_files().await.unwrap().is_empty());
    assert!(r.shared());
}

/// Bytes in parts against `pool`'s database.
async fn blobs(pool: PgPool, db: &ScratchDb) {
    let b = PgBlobs::new(PgHandle::new(pool));
    // Two and a half parts, written in pieces that straddle part boundaries.
    let big: Vec<u8> = (0..PART_BYTES * 5 / 2).map(|i| (i % 251) as u8).collect();
    let mut w = b.begin("file-big", u64::MAX).await.unwrap();
    for piece in big.chunks(300_000) {
        w.write(piece).await.unwrap();
    }
    assert_eq!(w.commit().await.unwrap(), big.len() as u64);
    assert_eq!(b.read("file-big").await.unwrap(), big);
    let streamed: Vec<Vec<u8>> = b
        .stream("file-big")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed.len(), 3);
    assert_eq!(streamed.concat(), big);
    assert_eq!(db.sql("SELECT count(*) FROM nfai_blob_parts"), "3");

    // Replacing the bytes drops the old parts; an empty file reads as empty.
    let mut w = b.begin("file-big", 10).await.unwrap();
    w.write(b"new").await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(b.read("file-big").await.unwrap(), b"new");
    assert_eq!(db.sql("SELECT count(*) FROM nfai_blob_parts"), "1");
    b.begin("file-empty", 10)
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    assert_eq!(b.read("file-empty").await.unwrap(), b"");

    // Over the limit or dropped uncommitted: nothing visible, and the parts go.
    let mut w = b.begin("file-over", PART_BYTES as u64 + 10).await.unwrap();
    w.write(&big[..PART_BYTES + 5]).await.unwrap();
    assert!(matches!(
        w.write(&big[..10]).await,
        Err(BlobError::TooLarge { .. })
    ));
    drop(w);
    assert!(matches!(
        b.read("file-over").await,
        Err(BlobError::Missing(_))
    ));
    let mut left = String::new();
    for _ in 0..100 {
        left = db.sql("SELECT count(*) FROM nfai_blob_parts");
        if left == "1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, "1", "the aborted upload's part is removed");

    b.delete("file-big").await.unwrap();
    b.delete("file-big").await.unwrap();
    assert!(matches!(
        b.read("file-big").await,
        Err(BlobError::Missing(_))
    ));
    assert!(matches!(b.stream("nope").await, Err(BlobError::Missing(_))));
    assert_eq!(db.sql("SELECT count(*) FROM nfai_blob_parts"), "0");
}

#[tokio::test]
async fn records_and_bytes_round_trip_in_postgresql() {
    let db = ScratchDb::new("records");
    round_trip(pool(&db.url(), StatementMode::Unnamed, 4)).await;
    blobs(pool(&db.url(), StatementMode::Prepared, 4), &db).await;
}

#[tokio::test]
async fn records_and_bytes_work_through_pgbouncer_in_transaction_mode() {
    let db = ScratchDb::new("records_bouncer");
    let bouncer = Bouncer::start(&db.name, 2).await;
    round_trip(pool(&bouncer.url(&db.name), StatementMode::Unnamed, 4)).await;
    blobs(
        pool(&bouncer.url(&db.name), StatementMode::Transaction, 4),
        &db,
    )
    .await;
}

#[tokio::test]
async fn an_ingestion_claim_has_one_holder_until_released_or_expired() {
    let db = ScratchDb::new("claims");
    let r = PgRecords::new(PgHandle::new(pool(&db.url(), StatementMode::Unnamed, 2)));
    let job = store_file("vs_1", "file-1", FileStatus::InProgress, 3);
    r.put_store_file(job.clone()).await.unwrap();
    let long = Duration::from_secs(600);
    assert!(r.claim_job(&job, "node-a", long).await.unwrap());
    assert!(r.claim_job(&job, "node-a", long).await.unwrap(), "its own");
    assert!(!r.claim_job(&job, "node-b", long).await.unwrap());
    r.release_job("vs_1", "file-1", "node-b").await.unwrap();
    assert!(!r.claim_job(&job, "node-b", long).await.unwrap(), "not b's");
    r.release_job("vs_1", "file-1", "node-a").await.unwrap();
    assert!(r.claim_job(&job, "node-b", long).await.unwrap());

    // A newer revision takes over; an older one does not.
    let newer = store_file("vs_1", "file-1", FileStatus::InProgress, 4);
    assert!(r.claim_job(&newer, "node-a", long).await.unwrap());
    assert!(!r.claim_job(&job, "node-b", long).await.unwrap());

    // An expired lease (its holder died) is free.
    let short = Duration::from_millis(50);
    let other = store_file("vs_1", "file-2", FileStatus::InProgress, 0);
    assert!(r.claim_job(&other, "node-a", short).await.unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(r.claim_job(&other, "node-b", long).await.unwrap());
}

/// A replica: the service over the shared database and the shared vector store.
fn replica(db: &ScratchDb, store: &Arc<dyn VectorStore>, embed: &Arc<E5Embed>) -> RetrievalService {
    let handle = PgHandle::new(pool(&db.url(), StatementMode::Unnamed, 4));
    RetrievalService::start(
        Arc::new(PgRecords::new(handle.clone())),
        Arc::new(PgBlobs::new(handle)),
        Arc::clone(store),
        Arc::clone(embed) as _,
        ServiceOptions::default(),
    )
}

#[test]
fn replicas_on_one_database_answer_for_each_others_files() {
    in_scratch_dir(|dir| async move {
        let db = ScratchDb::new("replicas");
        let vectors: Arc<dyn VectorStore> = Arc::new(
            EdgeStore::new(dir.join("vector_stores"), EdgeStoreOptions::default()).unwrap(),
        );
        let embed = Arc::new(E5Embed::load());
        let a = replica(&db, &vectors, &embed);
        let b = replica(&db, &vectors, &embed);

        let text = "Khách hàng Nguyễn Văn An hỏi về đơn hàng #4521: giao trước thứ Sáu.";
        let (id, mut writer) = a.begin_upload().await.unwrap();
        writer.write(text.as_bytes()).await.unwrap();
        a.finish_upload(
            id.clone(),
            writer,
            "ticket.txt".into(),
            "assistants".into(),
            None,
            None,
        )
        .await
        .unwrap();
        let store = a
            .create_store(CreateStore {
                name: Some("crm".into()),
                metadata: Map::new(),
                expires_after: None,
                chunking_strategy: None,
                file_ids: Vec::new(),
                embedding_model: None,
                owner: None,
            })
            .await
            .unwrap()
            .record
            .id;

        // B sees A's file, its bytes and its store, and adds the file to it.
        assert_eq!(b.file(&id).await.unwrap().filename, "ticket.txt");
        let (_, pieces) = b.file_content(&id).await.unwrap();
        let bytes: Vec<Vec<u8>> = pieces.try_collect().await.unwrap();
        assert_eq!(bytes.concat(), text.as_bytes());
        b.add_file(
            &store,
            AddFile {
                file_id: id.clone(),
                attributes: Map::new(),
                chunking_strategy: None,
            },
            None,
        )
        .await
        .unwrap();
        assert_eq!(ingested(&a, &store).await, 1);
        // Both sweepers saw the job; one ran it.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(a.ingest_runs() + b.ingest_runs(), 1);

        let hits = a
            .search(
                &store,
                SearchRequest {
                    queries: vec!["đơn hàng 4521 giao khi nào".into()],
                    filter: None,
                    max_num_results: 3,
                    score_threshold: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(hits[0].payload.file_id, id);

        // A deletes the file; B no longer finds it.
        a.delete_file(&id).await.unwrap();
        assert!(b.file(&id).await.is_err());
        assert!(b.file_content(&id).await.is_err());
    });
}
