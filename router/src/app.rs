//! The application: builds the router with its state, binds, and serves until shut down.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;

use crate::api::router;
use crate::config::Config;
use crate::registry::ModelRegistry;
use crate::state::AppState;

/// A bound, ready-to-run server.
#[derive(Debug)]
pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    state: AppState,
    /// HTTPS: the live rustls config (reloaded when its files change).
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    /// The data directory this server holds (`server_file` names it there).
    data_dir: std::path::PathBuf,
}

impl Application {
    /// Fetches missing models (when allowed), loads the served models and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Keys and TLS first: a server that may not start fails before loading models.
        let database = crate::retrieval::database_pool(&config.reserved)?;
        let (keyring, limiter) = crate::auth::setup::setup(&config, database.as_ref()).await?;
        let tls = match &config.tls {
            Some(files) => Some((crate::tls::load(files).await?, files.clone())),
            None => None,
        };
        let serve_entries: Vec<_> = config
            .serve
            .iter()
            .filter_map(|id| config.catalog.resolve(id))
            .collect();
        let missing: Vec<_> = serve_entries
            .iter()
            .copied()
            .filter(|e| !crate::fetch::missing_files(e, &config.model_dir).is_empty())
            .collect();
        if !missing.is_empty() {
            let ids: Vec<&str> = missing.iter().map(|e| e.id.as_str()).collect();
            anyhow::ensure!(
                config.fetch_missing,
                "models {ids:?} are missing from {} and fetching is off; run `nfai models fetch`",
                config.model_dir.display()
            );
            tracing::info!(models = ?ids, dir = %config.model_dir.display(), "fetching missing models");
            for outcome in
                crate::fetch::fetch_models(&missing, &config.model_dir, Default::default()).await?
            {
                tracing::info!("{outcome}");
            }
        }
        let registry = ModelRegistry::start(
            config.catalog.clone(),
            &config.serve,
            &config.model_dir,
            config.engine.clone(),
            config.cache.clone(),
        )?;
        registry
            .cache()
            .preload(config.preload.iter().cloned())
            .await?;
        let state = AppState::new(registry, config.preload.clone(), config.admin_token.clone())
            .with_routing(&config.routing)?
            .with_logging(config.reserved.log_bodies, config.max_body_bytes)?
            .with_auth(Some(keyring), limiter, config.reserved.private_metrics)?;
        let retrieval = crate::retrieval::start(
            &config.reserved,
            Arc::clone(state.native()),
            database.as_ref(),
        )?;
        state
            .metrics()
            .register(Arc::new(crate::retrieval::metrics::RetrievalMetrics(
                retrieval.clone(),
            )));
        let sources = crate::retrieval::sources::start(
            &config.reserved,
            &config.reserved.data_dir,
            retrieval.clone(),
            true,
        )?;
        let mut pools = sources
            .as_ref()
            .map(|s| s.pools.clone())
            .unwrap_or_default();
        if let Some(db) = &database {
            pools.insert("records".to_owned(), db.clone());
        }
        if !pools.is_empty() {
            state
                .metrics()
                .register(Arc::new(crate::retrieval::pool_metrics::PoolMetrics(pools)));
        }
        let responses = crate::responses::store::ResponseStore::open(
            &config.reserved.data_dir.join("responses"),
            crate::responses::store::Retention {
                max_stored: config.reserved.responses_max_stored,
                retention_secs: config.reserved.responses_retention_secs,
            },
        )
        .with_context(|| {
            format!(
                "opening the stored responses in {}",
                config.reserved.data_dir.display()
            )
        })?;
        let state = state
            .with_retrieval(retrieval)?
            .with_sources(sources)?
            .with_responses(responses)?;
        let addr = SocketAddr::new(config.host, config.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let router = router(state.clone(), config.max_body_bytes);
        let tls = tls.map(|(live, files)| {
            crate::tls::watch(live.clone(), files);
            live
        });
        let url = crate::server_file::local_url(listener.local_addr()?, tls.is_some());
        if let Err(e) = crate::server_file::write(&config.reserved.data_dir, &url) {
            tracing::warn!(error = %e, "cannot record the server in the data directory");
        }
        Ok(Self {
            listener,
            router,
            state,
            tls,
            data_dir: config.reserved.data_dir.clone(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Waits until every preloaded model is Ready; fails with the first load error.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        wait_ready(&self.state).await
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let data_dir = self.data_dir.clone();
        let served = self.serve(shutdown).await;
        crate::server_file::remove(&data_dir);
        served
    }

    async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Some(tls) = self.tls else {
            return axum::serve(self.listener, self.router)
                .with_graceful_shutdown(shutdown)
                .await;
        };
        let handle = axum_server::Handle::new();
        let on_signal = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            on_signal.graceful_shutdown(None);
        });
        axum_server::from_tcp_rustls(self.listener.into_std()?, tls)?
            .handle(handle)
            .serve(self.router.into_make_service())
            .await
    }

    /// Whether the server answers HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Waits until every preloaded model of `state` is Ready; fails with the first load error.
pub async fn wait_ready(state: &AppState) -> anyhow::Result<()> {
    let cache = state.registry().cache();
    loop {
        let statuses = cache.status().await?;
        let mut pending = false;
        for id in state.preload() {
            let Some(st) = statuses.iter().find(|s| &s.id == id) else {
                continue;
            };
            match st.state {
                nfai_cache::ModelState::Ready => {}
                nfai_cache::ModelState::Failed => anyhow::bail!(
                    "model {id:?} failed to load: {}",
                    st.last_error.as_deref().unwrap_or("unknown error")
                ),
                _ => pending = true,
            }
        }
        if !pending {
            state.mark_preloads_done();
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
