//! Through a real PgBouncer in transaction mode (no prepared statements in Debian's 1.18):
//! the `unnamed` and `transaction` statement modes serve many concurrent callers over few
//! server connections.

use std::sync::Arc;

use nfai_retrieval::pg::{StatementMode, Type};

use crate::support::{Bouncer, ScratchDb, pool};

#[tokio::test]
async fn unnamed_and_transaction_modes_work_through_pgbouncer_in_transaction_mode() {
    let db = ScratchDb::new("bouncer");
    db.sql(
        "CREATE TABLE kv (id bigint PRIMARY KEY, v text NOT NULL);
         INSERT INTO kv SELECT g, 'v' || g FROM generate_series(1, 1000) g",
    );
    let bouncer = Bouncer::start(&db.name, 2).await;
    for mode in [StatementMode::Unnamed, StatementMode::Transaction] {
        // 8 client connections multiplexed onto 2 server connections.
        let pool = Arc::new(pool(&bouncer.url(&db.name), mode, 8));
        let mut tasks = Vec::new();
        for t in 0..16_i64 {
            let pool = Arc::clone(&pool);
            tasks.push(tokio::spawn(async move {
                for i in 0..40_i64 {
                    let id = (t * 40 + i) % 1000 + 1;
                    let rows = pool
                        .query(
                            "SELECT v, $2::text AS tag FROM kv WHERE id = $1",
                            &[(&id, Type::INT8), (&"x", Type::TEXT)],
                        )
                        .await
                        .unwrap();
                    assert_eq!(rows[0].get::<_, String>(0), format!("v{id}"));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let s = pool.snapshot();
        assert_eq!((s.queries, s.query_errors), (640, 0), "{mode:?}");
    }
}
