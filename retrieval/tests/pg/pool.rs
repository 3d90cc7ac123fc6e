//! The pool against the local server: every statement mode, metrics, a bounded wait on an
//! exhausted pool, recycling of a dropped connection, and the server's errors sorted.

use std::time::Duration;

use nfai_retrieval::pg::{PgConfig, PgError, PgPool, StatementMode, Type};

use crate::support::{ScratchDb, pool};

const MODES: [StatementMode; 3] = [
    StatementMode::Prepared,
    StatementMode::Unnamed,
    StatementMode::Transaction,
];

#[tokio::test]
async fn every_statement_mode_reads_the_rows_its_parameters_select() {
    let db = ScratchDb::new("modes");
    db.sql(
        "CREATE TABLE kv (id bigint PRIMARY KEY, v text NOT NULL);
         INSERT INTO kv SELECT g, 'Khách hàng ' || g FROM generate_series(1, 100) g",
    );
    for mode in MODES {
        let pool = pool(&db.url(), mode, 4);
        for id in [1_i64, 42, 100] {
            let rows = pool
                .query("SELECT v FROM kv WHERE id = $1", &[(&id, Type::INT8)])
                .await
                .unwrap();
            assert_eq!(rows.len(), 1, "{mode:?}");
            assert_eq!(rows[0].get::<_, String>(0), format!("Khách hàng {id}"));
        }
        // A value that looks like SQL stays a value.
        let evil = "1; DROP TABLE kv";
        let rows = pool
            .query("SELECT id FROM kv WHERE v = $1", &[(&evil, Type::TEXT)])
            .await
            .unwrap();
        assert!(rows.is_empty());
        let s = pool.snapshot();
        assert_eq!(s.statement_mode, mode.as_str());
        assert_eq!(
            (s.queries, s.query_errors, s.checkouts),
            (4, 0, 4),
            "{mode:?}"
        );
        assert_eq!(s.query_latency.count, 4);
        assert!(s.size >= 1 && s.size <= 4 && s.max_size == 4);
    }
    assert_eq!(db.sql("SELECT count(*) FROM kv"), "100");
}

#[tokio::test]
async fn an_exhausted_pool_waits_its_timeout_then_fails_retryably() {
    let db = ScratchDb::new("exhaust");
    let mut config = PgConfig::new(db.url());
    config.max_size = 1;
    config.wait_timeout = Duration::from_millis(150);
    let pool = PgPool::connect(config).unwrap();
    let held = pool.get().await.unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PgError::Exhausted { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("150ms"), "{err}");
    let s = pool.snapshot();
    assert_eq!((s.checkouts, s.checkout_timeouts), (1, 1));
    drop(held);
    pool.query("SELECT 1", &[]).await.unwrap();
}

#[tokio::test]
async fn a_connection_the_server_dropped_is_replaced_at_checkout() {
    let db = ScratchDb::new("recycle");
    let pool = pool(&db.url(), StatementMode::Prepared, 1);
    let pid: i32 = pool.query("SELECT pg_backend_pid()", &[]).await.unwrap()[0].get(0);
    db.sql(&format!("SELECT pg_terminate_backend({pid})"));
    // The recycling check (fast: the client saw the connection close) notices the dead
    // connection and opens a new one.
    let rows = pool.query("SELECT pg_backend_pid()", &[]).await.unwrap();
    assert_ne!(rows[0].get::<_, i32>(0), pid);
}

#[tokio::test]
async fn a_refused_statement_carries_the_server_message_and_a_dead_server_is_unavailable() {
    let db = ScratchDb::new("errors");
    for mode in MODES {
        let pool = pool(&db.url(), mode, 2);
        let err = pool
            .query("SELECT nope FROM missing", &[])
            .await
            .unwrap_err();
        match &err {
            PgError::Query { code, message } => {
                assert_eq!(code, "42P01");
                assert!(message.contains("missing"), "{message}");
            }
            other => panic!("{mode:?}: {other}"),
        }
        assert!(!err.is_retryable());
        assert_eq!(pool.snapshot().query_errors, 1);
    }
    let port = crate::support::free_port();
    let pool = pool(
        &format!("postgres://postgres@127.0.0.1:{port}/x"),
        StatementMode::Prepared,
        1,
    );
    let err = pool.query("SELECT 1", &[]).await.unwrap_err();
    assert!(matches!(err, PgError::Unavailable(_)), "{err}");
    assert_eq!(pool.snapshot().checkout_errors, 1);
}

#[tokio::test]
async fn describe_names_the_columns_of_a_query() {
    let db = ScratchDb::new("describe");
    db.sql("CREATE TABLE t (id bigint, body text, updated_at timestamptz)");
    let pool = pool(&db.url(), StatementMode::Unnamed, 1);
    let cols = pool
        .get()
        .await
        .unwrap()
        .describe("SELECT * FROM t")
        .await
        .unwrap();
    let cols: Vec<_> = cols.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    assert_eq!(
        cols,
        [
            ("id", Type::INT8),
            ("body", Type::TEXT),
            ("updated_at", Type::TIMESTAMPTZ)
        ]
    );
}

#[tokio::test]
async fn a_database_that_does_not_exist_is_a_setting_to_fix_not_an_outage() {
    let pool = pool(
        &format!("{}/nfai_no_such_database", crate::support::SERVER),
        StatementMode::Prepared,
        1,
    );
    let err = pool.query("SELECT 1", &[]).await.unwrap_err();
    assert!(matches!(err, PgError::Config(_)), "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("nfai_no_such_database"), "{err}");
}
