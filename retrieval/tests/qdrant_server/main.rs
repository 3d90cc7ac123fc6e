//! `QdrantServerStore` against a Qdrant-protocol gRPC server running in the test process
//! (qdrant-client's generated services over qdrant-edge, served by tonic on port 0), and
//! Qdrant's documented error cases: nothing listening, a missing collection, a timeout.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed test, reported where it happens"
)]

#[path = "../common/mod.rs"]
mod common;
mod grpc_filter;
mod server;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{DIM, MODEL, chunk, chunks, query};
use nfai_retrieval::{
    AttributeFilter, AttributeKind, AttributeValue, CollectionSpec, EdgeStore, EdgeStoreOptions,
    QdrantServerConfig, QdrantServerStore, RetrievalError, VectorStore,
};
use serde_json::json;

fn spec() -> CollectionSpec {
    CollectionSpec {
        model: MODEL.into(),
        dimension: DIM,
    }
}

/// A server over a fresh embedded store, and a client for it.
async fn served(delay: Duration) -> (tempfile::TempDir, EdgeStore, QdrantServerStore, String) {
    let dir = tempfile::tempdir().unwrap();
    let edge = EdgeStore::new(dir.path(), EdgeStoreOptions::default()).unwrap();
    let url = format!("http://{}", server::spawn(edge.clone(), delay).await);
    let client = QdrantServerStore::new(&QdrantServerConfig::new(url.clone())).unwrap();
    (dir, edge, client, url)
}

async fn matching(store: &QdrantServerStore, filter: serde_json::Value) -> BTreeSet<u32> {
    let mut q = query(11, 100);
    q.filter = Some(AttributeFilter::from_json(&filter).unwrap());
    store
        .search("vs_remote", q)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.payload.chunk_index)
        .collect()
}

#[tokio::test]
async fn the_server_store_round_trips_through_the_qdrant_protocol() {
    let (_dir, edge, client, _) = served(Duration::ZERO).await;
    client.create_collection("vs_remote", spec()).await.unwrap();
    assert!(matches!(
        client.create_collection("vs_remote", spec()).await,
        Err(RetrievalError::AlreadyExists(_))
    ));
    client
        .upsert("vs_remote", chunks("file-a", 60))
        .await
        .unwrap();
    client
        .upsert("vs_remote", chunks("file-bb", 10))
        .await
        .unwrap();
    assert_eq!(client.count("vs_remote").await.unwrap(), 70);

    let info = client.open_collection("vs_remote").await.unwrap();
    assert_eq!(info.spec, spec());
    assert_eq!(info.points, 70);
    assert_eq!(info.attributes.get("region"), Some(&AttributeKind::String));
    assert_eq!(info.attributes.get("amount"), Some(&AttributeKind::Number));
    assert_eq!(info.attributes.get("open"), Some(&AttributeKind::Bool));

    // The same search through the protocol and directly on the engine agrees.
    let remote = client.search("vs_remote", query(4, 10)).await.unwrap();
    let direct = edge
        .collection_blocking("vs_remote")
        .unwrap()
        .search_points(query(4, 10).vector, None, 10, None)
        .unwrap();
    assert_eq!(
        remote.iter().map(|h| h.id).collect::<Vec<_>>(),
        direct.iter().map(|h| h.id).collect::<Vec<_>>()
    );
    assert_eq!(remote[0].payload, chunk_for(&remote[0]).payload);

    let region = |i: u32| ["north", "south", "central"][i as usize % 3];
    let file_a =
        |pred: &dyn Fn(u32) -> bool| -> BTreeSet<u32> { (0..60).filter(|&i| pred(i)).collect() };
    let with_b = |mut set: BTreeSet<u32>, pred: &dyn Fn(u32) -> bool| {
        set.extend((0..10).filter(|&i| pred(i)));
        set
    };
    assert_eq!(
        matching(
            &client,
            json!({"type": "eq", "key": "region", "value": "south"})
        )
        .await,
        with_b(file_a(&|i| region(i) == "south"), &|i| region(i) == "south")
    );
    assert_eq!(
        matching(
            &client,
            json!({"type": "and", "filters": [
                {"type": "gte", "key": "amount", "value": 40},
                {"type": "ne", "key": "open", "value": true},
                {"type": "nin", "key": "region", "value": ["north"]}
            ]})
        )
        .await,
        file_a(&|i| i >= 40 && i % 2 == 1 && region(i) != "north")
    );
    assert_eq!(
        matching(
            &client,
            json!({"type": "or", "filters": [
                {"type": "in", "key": "amount", "value": [55, 56]},
                {"type": "lt", "key": "amount", "value": 1}
            ]})
        )
        .await,
        [0, 55, 56].into_iter().collect()
    );

    assert_eq!(client.delete_file("vs_remote", "file-a").await.unwrap(), 60);
    assert_eq!(client.count("vs_remote").await.unwrap(), 10);
    assert!(!client.optimize("vs_remote").await.unwrap());
    client.flush("vs_remote").await.unwrap();
    client.drop_collection("vs_remote").await.unwrap();
    assert!(matches!(
        client.count("vs_remote").await,
        Err(RetrievalError::NotFound(_))
    ));
}

fn chunk_for(hit: &nfai_retrieval::SearchHit) -> nfai_retrieval::Chunk {
    chunk(&hit.payload.file_id, hit.payload.chunk_index)
}

#[tokio::test]
async fn pins_and_attribute_types_are_shared_between_replicas() {
    let (_dir, _edge, first, url) = served(Duration::ZERO).await;
    first.create_collection("vs_remote", spec()).await.unwrap();
    first
        .upsert("vs_remote", chunks("file-a", 6))
        .await
        .unwrap();

    // A second replica fills its cache, then the first adds an attribute it has not seen.
    let second = QdrantServerStore::new(&QdrantServerConfig::new(url)).unwrap();
    assert_eq!(
        second.search("vs_remote", query(1, 3)).await.unwrap().len(),
        3
    );
    let mut tagged = chunk("file-c", 0);
    tagged
        .payload
        .attributes
        .insert("stage".into(), AttributeValue::String("won".into()));
    first.upsert("vs_remote", vec![tagged]).await.unwrap();
    assert_eq!(
        matching(
            &second,
            json!({"type": "eq", "key": "stage", "value": "won"})
        )
        .await,
        [0].into_iter().collect()
    );

    let mut other_model = query(1, 3);
    other_model.model = "all-MiniLM-L6-v2".into();
    assert!(matches!(
        second.search("vs_remote", other_model).await,
        Err(RetrievalError::ModelMismatch { .. })
    ));
    let mut q = query(1, 3);
    q.filter = Some(
        AttributeFilter::from_json(&json!({"type": "eq", "key": "stage", "value": 1})).unwrap(),
    );
    assert!(matches!(
        second.search("vs_remote", q).await,
        Err(RetrievalError::InvalidFilter { attribute, .. }) if attribute == "stage"
    ));
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut config = QdrantServerConfig::new(format!("http://{addr}"));
    config.timeout = Duration::from_secs(2);
    let client = QdrantServerStore::new(&config).unwrap();
    match client.count("vs_remote").await {
        Err(RetrievalError::Unavailable(cause)) => assert!(!cause.is_empty()),
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(matches!(
        client.create_collection("vs_remote", spec()).await,
        Err(RetrievalError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_missing_collection_is_not_found() {
    let (_dir, _edge, client, _) = served(Duration::ZERO).await;
    for result in [
        client.count("vs_missing").await.map(|_| ()),
        client.search("vs_missing", query(1, 3)).await.map(|_| ()),
        client.upsert("vs_missing", chunks("f", 1)).await,
        client.drop_collection("vs_missing").await,
        client.open_collection("vs_missing").await.map(|_| ()),
    ] {
        assert!(
            matches!(&result, Err(RetrievalError::NotFound(name)) if name == "vs_missing"),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn a_server_slower_than_the_deadline_is_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let edge = EdgeStore::new(dir.path(), EdgeStoreOptions::default()).unwrap();
    let addr = server::spawn(edge, Duration::from_secs(60)).await;
    let mut config = QdrantServerConfig::new(format!("http://{addr}"));
    config.timeout = Duration::from_millis(300);
    let client = QdrantServerStore::new(&config).unwrap();
    client.create_collection("vs_remote", spec()).await.unwrap();
    client
        .upsert("vs_remote", chunks("file-a", 3))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    match client.search("vs_remote", query(1, 3)).await {
        Err(RetrievalError::Timeout(_)) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// Chunks of two languages and some of none: `vie` ones lean on the first axis, `eng` ones on
/// the second.
fn chunks_in_languages() -> Vec<nfai_retrieval::Chunk> {
    (0..30u32)
        .map(|i| {
            let mut c = chunk("file-lang", i);
            let (lang, axis) = match i % 3 {
                0 => (Some("vie"), 0),
                1 => (Some("eng"), 1),
                _ => (None, 2),
            };
            c.vector[axis] += 0.8;
            let norm = c.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            c.vector.iter_mut().for_each(|x| *x /= norm);
            c.payload.lang = lang.map(str::to_owned);
            c
        })
        .collect()
}

#[tokio::test]
async fn languages_are_sampled_scoped_and_balanced_through_the_protocol() {
    use nfai_retrieval::{LanguageBalance, LanguageScope};
    let (_dir, edge, client, _) = served(Duration::ZERO).await;
    client.create_collection("vs_lang", spec()).await.unwrap();
    let written = chunks_in_languages();
    client.upsert("vs_lang", written.clone()).await.unwrap();

    // The sample holds every chunk (fewer than asked for), with its vector and language.
    let mut sample = client.sample("vs_lang", 1000).await.unwrap();
    assert_eq!(sample.len(), 30);
    let mut want: Vec<_> = written
        .iter()
        .map(|c| (c.payload.lang.clone(), c.vector.clone()))
        .collect();
    let mut got: Vec<_> = sample.drain(..).map(|s| (s.lang, s.vector)).collect();
    let key = |x: &(Option<String>, Vec<f32>)| format!("{:?}{:?}", x.0, x.1);
    want.sort_by_key(key);
    got.sort_by_key(key);
    for ((wl, wv), (gl, gv)) in want.iter().zip(&got) {
        assert_eq!(wl, gl);
        assert!(common::cosine(wv, gv) > 0.9999);
    }
    assert_eq!(client.sample("vs_lang", 7).await.unwrap().len(), 7);

    // A scope admits its language only; `NoneOf` admits the rest, unlabelled chunks included.
    let scoped = |scope: LanguageScope| {
        let mut q = query(3, 30);
        q.languages = Some(scope);
        q
    };
    let langs_of = |hits: Vec<nfai_retrieval::SearchHit>| -> BTreeSet<Option<String>> {
        hits.into_iter().map(|h| h.payload.lang).collect()
    };
    let vie = client
        .search("vs_lang", scoped(LanguageScope::Is("vie".into())))
        .await
        .unwrap();
    assert_eq!(vie.len(), 10);
    assert_eq!(langs_of(vie), BTreeSet::from([Some("vie".to_owned())]));
    let rest = client
        .search(
            "vs_lang",
            scoped(LanguageScope::NoneOf(vec!["vie".into(), "eng".into()])),
        )
        .await
        .unwrap();
    assert_eq!(rest.len(), 10);
    assert_eq!(langs_of(rest), BTreeSet::from([None]));

    // The balance measured through the protocol equals the embedded store's, and so do its
    // results.
    let remote = LanguageBalance::measure(&client, "vs_lang")
        .await
        .unwrap()
        .unwrap();
    let direct_store = edge.clone();
    let direct = LanguageBalance::measure(&direct_store, "vs_lang")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(remote.scopes().count(), 3);
    assert_eq!(
        remote.scopes().collect::<Vec<_>>(),
        direct.scopes().collect::<Vec<_>>()
    );
    let ids = |hits: Vec<nfai_retrieval::SearchHit>| hits.iter().map(|h| h.id).collect::<Vec<_>>();
    let a = remote
        .search(&client, "vs_lang", query(5, 12))
        .await
        .unwrap();
    let b = direct
        .search(&direct_store, "vs_lang", query(5, 12))
        .await
        .unwrap();
    assert_eq!(a.len(), 12);
    assert!(a.windows(2).all(|w| w[0].score >= w[1].score));
    assert_eq!(ids(a), ids(b));
}
