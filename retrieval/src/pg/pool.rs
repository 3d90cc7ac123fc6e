//! [`PgPool`]: deadpool-postgres with bounded waits and recycling checks, sending every
//! statement in the configured [`StatementMode`] and counting it in [`PgMetrics`].

use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};

use super::config::{PgConfig, Recycling, StatementMode};
use super::error::PgError;
use super::metrics::{PgMetrics, PgPoolSnapshot};

/// A typed statement parameter: the value and its PostgreSQL type (the unnamed mode sends
/// both without a prepare round trip; the other modes prepare with these types).
pub type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// A pool of PostgreSQL connections. Cheap to clone; clones share connections and metrics.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool,
    config: Arc<PgConfig>,
    metrics: Arc<PgMetrics>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PgPool {
    /// Builds the pool. No connection is opened until the first checkout, so a server that is
    /// down at start surfaces as [`PgError::Unavailable`] on use, not here.
    pub fn connect(config: PgConfig) -> Result<Self, PgError> {
        config.validate()?;
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e| PgError::Config(format!("database URL: {e}")))?;
        pg.application_name(&config.application_name);
        pg.connect_timeout(config.create_timeout);
        let recycling_method = match config.recycling {
            Recycling::Fast => RecyclingMethod::Fast,
            Recycling::Verified => RecyclingMethod::Verified,
        };
        let manager = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method });
        let pool = Pool::builder(manager)
            .max_size(config.max_size)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.create_timeout))
            .recycle_timeout(Some(config.recycle_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Config(e.to_string()))?;
        Ok(Self {
            pool,
            config: Arc::new(config),
            metrics: Arc::new(PgMetrics::default()),
        })
    }

    /// A connection, waiting at most the configured wait timeout for one to free up.
    pub async fn get(&self) -> Result<PgConn, PgError> {
        let started = Instant::now();
        let got = self.pool.get().await;
        self.metrics.checkout_wait.observe(started.elapsed());
        match got {
            Ok(client) => {
                PgMetrics::bump(&self.metrics.checkouts);
                Ok(PgConn {
                    client,
                    mode: self.config.statement_mode,
                    metrics: Arc::clone(&self.metrics),
                })
            }
            Err(PoolError::Timeout(TimeoutType::Wait)) => {
                PgMetrics::bump(&self.metrics.checkout_timeouts);
                Err(PgError::Exhausted {
                    waited: self.config.wait_timeout,
                })
            }
            Err(e) => {
                PgMetrics::bump(&self.metrics.checkout_errors);
                Err(checkout_error(e))
            }
        }
    }

    /// Checks out a connection and runs one statement on it. When a connection reused from the
    /// pool fails as unavailable (the server ended it while it sat idle: a restart, a
    /// terminated backend, an idle timeout, which the client may only notice when using it),
    /// it is dropped and the statement runs once more on another. That is safe because the
    /// statements sent through here are reads or idempotent writes (the records' upserts and
    /// deletes by key); a delete retried after a lost reply reports the row as already gone.
    /// A failure on a new connection is the server's state, answered as is.
    pub async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, PgError> {
        let mut conn = self.get().await?;
        let reused = Object::metrics(&conn.client).recycled.is_some();
        match conn.query(sql, params).await {
            Err(PgError::Unavailable(_)) if reused => {
                drop(Object::take(conn.client));
                self.get().await?.query(sql, params).await
            }
            done => done,
        }
    }

    /// The pool's state and counters now.
    pub fn snapshot(&self) -> PgPoolSnapshot {
        let s = self.pool.status();
        let m = &self.metrics;
        PgPoolSnapshot {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
            checkouts: PgMetrics::load(&m.checkouts),
            checkout_timeouts: PgMetrics::load(&m.checkout_timeouts),
            checkout_errors: PgMetrics::load(&m.checkout_errors),
            queries: PgMetrics::load(&m.queries),
            query_errors: PgMetrics::load(&m.query_errors),
            checkout_wait: m.checkout_wait.snapshot(),
            query_latency: m.query_latency.snapshot(),
            statement_mode: self.config.statement_mode.as_str(),
        }
    }

    /// The settings the pool was built with.
    pub fn config(&self) -> &PgConfig {
        &self.config
    }
}

fn checkout_error(e: PoolError) -> PgError {
    match e {
        PoolError::Timeout(TimeoutType::Create) => {
            PgError::Unavailable("opening a connection timed out".into())
        }
        PoolError::Timeout(TimeoutType::Recycle) => {
            PgError::Unavailable("checking a pooled connection timed out".into())
        }
        PoolError::Timeout(TimeoutType::Wait) => PgError::Unavailable("pool wait timed out".into()),
        PoolError::Backend(e) => match PgError::from_pg(&e) {
            // A wrong password or user (class 28) or a database that does not exist (3D000)
            // will not mend by waiting: a setting to fix, not an outage.
            PgError::Query { code, message } if code.starts_with("28") || code == "3D000" => {
                PgError::Config(format!("connecting: {message} ({code})"))
            }
            PgError::Query { code, message } => {
                PgError::Unavailable(format!("connecting: {message} ({code})"))
            }
            other => other,
        },
        PoolError::Closed => PgError::Unavailable("the pool is closed".into()),
        PoolError::NoRuntimeSpecified => PgError::Config("no runtime".into()),
        PoolError::PostCreateHook(e) => PgError::Unavailable(e.to_string()),
    }
}

/// One checked-out connection; it goes back to the pool when dropped.
pub struct PgConn {
    client: Object,
    mode: StatementMode,
    metrics: Arc<PgMetrics>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PgConn {
    /// Runs one statement in the pool's statement mode; values only ever travel as parameters.
    pub async fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, PgError> {
        let started = Instant::now();
        let result = self.run(sql, params).await;
        self.metrics.query_latency.observe(started.elapsed());
        PgMetrics::bump(&self.metrics.queries);
        if result.is_err() {
            PgMetrics::bump(&self.metrics.query_errors);
        }
        result.map_err(|e| PgError::from_pg(&e))
    }

    async fn run(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        match self.mode {
            StatementMode::Unnamed => self.client.query_typed(sql, params).await,
            StatementMode::Prepared => {
                let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
                let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
                let statement = self.client.prepare_typed_cached(sql, &types).await?;
                self.client.query(&statement, &values).await
            }
            StatementMode::Transaction => {
                let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
                let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
                let tx = self.client.transaction().await?;
                let rows = {
                    // The statement is closed (dropped) before the commit, on the same server
                    // connection that prepared it.
                    let statement = tx.prepare_typed(sql, &types).await?;
                    tx.query(&statement, &values).await?
                };
                tx.commit().await?;
                Ok(rows)
            }
        }
    }

    /// The names and types of the columns `sql` returns, described inside a transaction so it
    /// works in every statement mode (PgBouncer included).
    pub async fn describe(&mut self, sql: &str) -> Result<Vec<(String, Type)>, PgError> {
        let described = async {
            let tx = self.client.transaction().await?;
            let columns = {
                let statement = tx.prepare(sql).await?;
                statement
                    .columns()
                    .iter()
                    .map(|c| (c.name().to_owned(), c.type_().clone()))
                    .collect::<Vec<_>>()
            };
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(columns)
        }
        .await;
        described.map_err(|e| PgError::from_pg(&e))
    }

    /// Closes this connection instead of returning it to the pool (after a failure that may
    /// have left it inside a transaction).
    pub fn discard(self) {
        drop(Object::take(self.client));
    }

    /// Runs statements without parameters through the simple query protocol (schema setup).
    pub async fn batch_execute(&mut self, sql: &str) -> Result<(), PgError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| PgError::from_pg(&e))
    }
}
