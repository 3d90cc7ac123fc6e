//! PostgreSQL stopped in the middle of a sync, on a private cluster: the sync pauses with its
//! cause in the status, searches keep answering, and once the cluster is back the sync resumes
//! from its checkpoint and completes.

use std::time::Duration;

use nfai_retrieval::pg::{PgConfig, PgPool};
use nfai_retrieval::service::SearchRequest;
use nfai_retrieval::sources::{CheckpointDir, SourceRunner, SyncState};

use crate::cluster::PrivateCluster;
use crate::sources::{ingested, service, source};
use crate::support::in_scratch_dir;

#[test]
fn a_sync_pauses_while_postgres_is_down_and_resumes_from_its_checkpoint() {
    in_scratch_dir(|dir| async move {
        let cluster = PrivateCluster::start();
        let (client, conn) = tokio_postgres::connect(&cluster.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        nfai_crm_demo::load(&client, 1_000, 42, false, |_, _, _| {})
            .await
            .unwrap();
        drop(client);
        task.await.unwrap().unwrap();

        let service = service(&dir);
        // Each page waits 200 ms in the database, so the stop below lands mid-sync.
        let tickets = source(serde_json::json!({
            "name": "tickets", "vector_store": "crm",
            "sql": "SELECT t.id, t.subject, t.body, t.updated_at, t.deleted_at \
                    FROM tickets t, pg_sleep(0.2) WHERE t.id <= 40",
            "text_columns": ["subject", "body"], "deleted_at_column": "deleted_at",
            "batch_rows": 4,
        }));
        let mut config = PgConfig::new(cluster.url());
        config.max_size = 2;
        config.create_timeout = Duration::from_secs(1);
        let runner = SourceRunner::start(
            vec![(tickets, PgPool::connect(config).unwrap())],
            service.clone(),
            CheckpointDir::open(dir.join("sources")).unwrap(),
        );
        let mut status = runner.watch("tickets").unwrap();
        let bound = Duration::from_secs(120);
        assert!(runner.trigger("tickets"));
        tokio::time::timeout(
            bound,
            status.wait_for(|s| s.checkpoint.is_some() && s.rows_read >= 4),
        )
        .await
        .expect("a first page")
        .unwrap();
        cluster.stop();
        let paused = tokio::time::timeout(bound, status.wait_for(|s| s.state == SyncState::Paused))
            .await
            .expect("the sync pauses")
            .unwrap()
            .clone();
        assert!(paused.cause.is_some(), "{paused:?}");
        assert!(paused.rows_read < 40, "{paused:?}");

        // Searches answer from the store meanwhile.
        let store = nfai_retrieval::sources::resolve_store(&service, "crm")
            .await
            .unwrap();
        ingested(&service, &store).await;
        let hits = service
            .search(
                &store,
                SearchRequest {
                    queries: vec!["đơn hàng giao trễ".into()],
                    filter: None,
                    max_num_results: 3,
                    score_threshold: None,
                },
            )
            .await
            .unwrap();
        assert!(!hits.is_empty());

        cluster.start_again();
        let done = tokio::time::timeout(bound, status.wait_for(|s| s.completed_syncs == 1))
            .await
            .expect("the sync resumes and completes")
            .unwrap()
            .clone();
        assert_eq!(done.state, SyncState::Idle);
        assert!(done.rows_total >= 40, "{done:?}");
        assert_eq!(ingested(&service, &store).await, 40);
    });
}
