//! The embedded store end to end on real qdrant-edge shards in temporary directories:
//! persistence across a reopen, model pinning, deletes, every filter operator, optimize.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed test, reported where it happens"
)]

mod common;

use std::collections::BTreeSet;

use common::{DIM, MODEL, chunk, chunks, cosine, query};
use nfai_retrieval::{
    AttributeFilter, AttributeKind, CollectionSpec, EdgeStore, EdgeStoreOptions, META_FILE,
    RetrievalError, VectorStore,
};
use serde_json::json;

fn spec() -> CollectionSpec {
    CollectionSpec {
        model: MODEL.into(),
        dimension: DIM,
    }
}

async fn store_with(dir: &std::path::Path, files: &[(&str, u32)]) -> EdgeStore {
    let store = EdgeStore::new(dir, EdgeStoreOptions::default()).unwrap();
    store.create_collection("vs_test", spec()).await.unwrap();
    for (file, n) in files {
        store.upsert("vs_test", chunks(file, *n)).await.unwrap();
    }
    store
}

fn ids(hits: &[nfai_retrieval::SearchHit]) -> Vec<u64> {
    hits.iter().map(|h| h.id).collect()
}

#[tokio::test]
async fn reopening_after_a_restart_finds_the_same_chunks_without_re_embedding() {
    let dir = tempfile::tempdir().unwrap();
    let (before, info_before) = {
        let store = store_with(dir.path(), &[("file-a", 40), ("file-b", 25)]).await;
        store.flush("vs_test").await.unwrap();
        let hits = store.search("vs_test", query(7, 10)).await.unwrap();
        (hits, store.open_collection("vs_test").await.unwrap())
    };
    assert_eq!(before.len(), 10);
    assert_eq!(info_before.points, 65);

    let reopened = EdgeStore::new(dir.path(), EdgeStoreOptions::default()).unwrap();
    let info = reopened.open_collection("vs_test").await.unwrap();
    assert_eq!(info, info_before);
    assert_eq!(info.spec, spec());
    assert_eq!(info.attributes.get("region"), Some(&AttributeKind::String));
    assert_eq!(info.attributes.get("amount"), Some(&AttributeKind::Number));
    assert_eq!(info.attributes.get("open"), Some(&AttributeKind::Bool));
    let after = reopened.search("vs_test", query(7, 10)).await.unwrap();
    assert_eq!(after, before);
    assert_eq!(reopened.count("vs_test").await.unwrap(), 65);
}

#[tokio::test]
async fn search_ranks_by_cosine_and_returns_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &[("file-a", 60)]).await;
    let q = query(3, 5);
    let hits = store.search("vs_test", q.clone()).await.unwrap();
    let mut expected: Vec<(f32, u32)> = (0..60)
        .map(|i| (cosine(&q.vector, &chunk("file-a", i).vector), i))
        .collect();
    expected.sort_by(|a, b| b.0.total_cmp(&a.0));
    let got: Vec<u32> = hits.iter().map(|h| h.payload.chunk_index).collect();
    let want: Vec<u32> = expected.iter().take(5).map(|e| e.1).collect();
    assert_eq!(got, want);
    for hit in &hits {
        let stored = chunk("file-a", hit.payload.chunk_index);
        assert_eq!(hit.payload, stored.payload);
        assert!((hit.score - cosine(&q.vector, &stored.vector)).abs() < 1e-3);
    }

    // The threshold drops everything scoring below it.
    let threshold = expected[2].0 - 1e-4;
    let mut with_threshold = q.clone();
    with_threshold.limit = 50;
    with_threshold.score_threshold = Some(threshold);
    let kept = store.search("vs_test", with_threshold).await.unwrap();
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().all(|h| h.score >= threshold - 1e-3));
}

#[tokio::test]
async fn another_model_or_dimension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &[("file-a", 5)]).await;
    let mut q = query(1, 3);
    q.model = "all-MiniLM-L6-v2".into();
    match store.search("vs_test", q).await {
        Err(RetrievalError::ModelMismatch {
            stored, requested, ..
        }) => {
            assert_eq!(stored, MODEL);
            assert_eq!(requested, "all-MiniLM-L6-v2");
        }
        other => panic!("expected a model mismatch, got {other:?}"),
    }
    let mut short = query(1, 3);
    short.vector.truncate(DIM - 1);
    assert!(matches!(
        store.search("vs_test", short).await,
        Err(RetrievalError::InvalidVector(_))
    ));
    let mut bad = chunk("file-x", 0);
    bad.vector = vec![0.5; DIM + 1];
    assert!(matches!(
        store.upsert("vs_test", vec![bad]).await,
        Err(RetrievalError::InvalidVector(_))
    ));
    for limit in [0, nfai_retrieval::MAX_SEARCH_LIMIT + 1] {
        assert!(matches!(
            store.search("vs_test", query(1, limit)).await,
            Err(RetrievalError::InvalidArgument { field: "limit", .. })
        ));
    }
}

#[tokio::test]
async fn deleting_a_file_removes_only_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &[("file-a", 30), ("file-bb", 20)]).await;
    assert_eq!(store.delete_file("vs_test", "file-a").await.unwrap(), 30);
    assert_eq!(store.delete_file("vs_test", "file-a").await.unwrap(), 0);
    assert_eq!(store.count("vs_test").await.unwrap(), 20);
    let hits = store.search("vs_test", query(9, 50)).await.unwrap();
    assert_eq!(hits.len(), 20);
    assert!(hits.iter().all(|h| h.payload.file_id == "file-bb"));
}

#[tokio::test]
async fn collections_are_created_once_found_by_name_and_dropped_with_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &[("file-a", 3)]).await;
    assert!(matches!(
        store.create_collection("vs_test", spec()).await,
        Err(RetrievalError::AlreadyExists(_))
    ));
    for missing in [
        store.count("vs_other").await.map(|_| ()),
        store.flush("vs_other").await,
    ] {
        assert!(matches!(missing, Err(RetrievalError::NotFound(name)) if name == "vs_other"));
    }
    assert!(matches!(
        store.create_collection("../escape", spec()).await,
        Err(RetrievalError::InvalidName { .. })
    ));
    store.drop_collection("vs_test").await.unwrap();
    assert!(!dir.path().join("vs_test").exists());
    assert!(matches!(
        store.open_collection("vs_test").await,
        Err(RetrievalError::NotFound(_))
    ));
    assert!(matches!(
        store.drop_collection("vs_test").await,
        Err(RetrievalError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_creation_that_never_finished_is_absent_and_can_be_redone() {
    let dir = tempfile::tempdir().unwrap();
    // A directory without the metadata file: what a crash during creation leaves.
    std::fs::create_dir_all(dir.path().join("vs_test/segments/junk")).unwrap();
    let store = EdgeStore::new(dir.path(), EdgeStoreOptions::default()).unwrap();
    assert!(matches!(
        store.open_collection("vs_test").await,
        Err(RetrievalError::NotFound(_))
    ));
    store.create_collection("vs_test", spec()).await.unwrap();
    assert!(dir.path().join("vs_test").join(META_FILE).exists());
    store.upsert("vs_test", chunks("file-a", 4)).await.unwrap();
    assert_eq!(store.count("vs_test").await.unwrap(), 4);
}

#[tokio::test]
async fn an_attribute_with_a_new_type_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &[("file-a", 3)]).await;
    let mut bad = chunk("file-b", 0);
    bad.payload.attributes.insert(
        "amount".into(),
        nfai_retrieval::AttributeValue::String("many".into()),
    );
    match store.upsert("vs_test", vec![bad]).await {
        Err(RetrievalError::AttributeType { attribute, .. }) => assert_eq!(attribute, "amount"),
        other => panic!("expected an attribute type error, got {other:?}"),
    }
    assert_eq!(store.count("vs_test").await.unwrap(), 3);
}

/// Runs `filter` over 60 chunks of one file and returns the chunk indexes found.
async fn matching(store: &EdgeStore, filter: serde_json::Value) -> BTreeSet<u32> {
    let mut q = query(11, 100);
    q.filter = Some(AttributeFilter::from_json(&filter).unwrap());
    store
        .search("vs_test", q)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.payload.chunk_index)
        .collect()
}

fn expected(pred: impl Fn(u32) -> bool) -> BTreeSet<u32> {
    (0..60).filter(|&i| pred(i)).collect()
}

#[tokio::test]
async fn every_filter_operator_selects_exactly_the_matching_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &[("file-a", 60)]).await;
    let region = |i: u32| ["north", "south", "central"][i as usize % 3];

    let cases: Vec<(serde_json::Value, BTreeSet<u32>)> = vec![
        (
            json!({"type": "eq", "key": "region", "value": "south"}),
            expected(|i| region(i) == "south"),
        ),
        (
            json!({"type": "eq", "key": "amount", "value": 17}),
            expected(|i| i == 17),
        ),
        (
            json!({"type": "eq", "key": "open", "value": false}),
            expected(|i| i % 2 == 1),
        ),
        (
            json!({"type": "ne", "key": "region", "value": "south"}),
            expected(|i| region(i) != "south"),
        ),
        (
            json!({"type": "ne", "key": "amount", "value": 3}),
            expected(|i| i != 3),
        ),
        (
            json!({"type": "ne", "key": "open", "value": true}),
            expected(|i| i % 2 == 1),
        ),
        (
            json!({"type": "gt", "key": "amount", "value": 50}),
            expected(|i| i > 50),
        ),
        (
            json!({"type": "gte", "key": "amount", "value": 50}),
            expected(|i| i >= 50),
        ),
        (
            json!({"type": "lt", "key": "amount", "value": 4.5}),
            expected(|i| i < 5),
        ),
        (
            json!({"type": "lte", "key": "amount", "value": 4}),
            expected(|i| i <= 4),
        ),
        (
            json!({"type": "in", "key": "region", "value": ["north", "central"]}),
            expected(|i| region(i) != "south"),
        ),
        (
            json!({"type": "in", "key": "amount", "value": [1, 2, 59, 99]}),
            expected(|i| [1, 2, 59].contains(&i)),
        ),
        (
            json!({"type": "in", "key": "open", "value": [true]}),
            expected(|i| i % 2 == 0),
        ),
        (
            json!({"type": "nin", "key": "region", "value": ["north", "central"]}),
            expected(|i| region(i) == "south"),
        ),
        (
            json!({"type": "nin", "key": "amount", "value": [0, 1, 2]}),
            expected(|i| i > 2),
        ),
        (
            json!({"type": "nin", "key": "open", "value": [true]}),
            expected(|i| i % 2 == 1),
        ),
        (
            json!({"type": "and", "filters": [
                {"type": "eq", "key": "region", "value": "north"},
                {"type": "gte", "key": "amount", "value": 30},
                {"type": "eq", "key": "open", "value": true}
            ]}),
            expected(|i| region(i) == "north" && i >= 30 && i % 2 == 0),
        ),
        (
            json!({"type": "or", "filters": [
                {"type": "lt", "key": "amount", "value": 3},
                {"type": "and", "filters": [
                    {"type": "eq", "key": "region", "value": "central"},
                    {"type": "gt", "key": "amount", "value": 55}
                ]}
            ]}),
            expected(|i| i < 3 || (region(i) == "central" && i > 55)),
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(
            matching(&store, filter.clone()).await,
            want,
            "filter {filter}"
        );
    }
}

#[tokio::test]
async fn filters_on_unknown_or_mistyped_attributes_name_the_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &[("file-a", 5)]).await;
    for (filter, name) in [
        (
            json!({"type": "eq", "key": "colour", "value": "red"}),
            "colour",
        ),
        (
            json!({"type": "eq", "key": "amount", "value": "5"}),
            "amount",
        ),
        (
            json!({"type": "gt", "key": "region", "value": "m"}),
            "region",
        ),
        (
            json!({"type": "in", "key": "open", "value": ["yes"]}),
            "open",
        ),
    ] {
        let mut q = query(1, 5);
        q.filter = Some(AttributeFilter::from_json(&filter).unwrap());
        match store.search("vs_test", q).await {
            Err(RetrievalError::InvalidFilter { attribute, .. }) => assert_eq!(attribute, name),
            other => panic!("{filter}: expected an invalid filter, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn optimize_builds_the_hnsw_index_and_search_still_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let options = EdgeStoreOptions {
        indexing_threshold_kb: Some(16),
        ..EdgeStoreOptions::default()
    };
    let store = EdgeStore::new(dir.path(), options).unwrap();
    store.create_collection("vs_test", spec()).await.unwrap();
    store
        .upsert("vs_test", chunks("file-a", 1500))
        .await
        .unwrap();
    let before = store.search("vs_test", query(5, 10)).await.unwrap();
    assert_eq!(
        store
            .open_collection("vs_test")
            .await
            .unwrap()
            .indexed_vectors,
        0
    );

    assert!(store.optimize("vs_test").await.unwrap());
    let info = store.open_collection("vs_test").await.unwrap();
    assert_eq!(info.points, 1500);
    assert!(info.indexed_vectors >= 1500, "{info:?}");
    let after = store.search("vs_test", query(5, 10)).await.unwrap();
    let overlap = ids(&before)
        .iter()
        .filter(|id| ids(&after).contains(id))
        .count();
    assert!(
        overlap >= 9,
        "HNSW top-10 overlaps exact top-10 in {overlap}"
    );
    // Filters still use the payload index after optimization.
    let mut q = query(5, 1000);
    q.filter = Some(
        AttributeFilter::from_json(&json!({"type": "eq", "key": "region", "value": "north"}))
            .unwrap(),
    );
    assert_eq!(store.search("vs_test", q).await.unwrap().len(), 500);
}
