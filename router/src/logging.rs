//! Log output: text for a terminal, JSON lines otherwise (`NFAI_LOG_FORMAT`, `[logging]
//! format`), filtered by `NFAI_LOG`. [`init`] installs text on stderr before the configuration
//! is read, so its warnings are seen; [`Logging::apply`] switches to the configured format once
//! it is known. Access lines go to the `nfai::access` target (see `api::metrics_layer`).

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::reserved::LogFormat;

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The installed subscriber's output, which [`Logging::apply`] may replace.
pub struct Logging {
    handle: Option<reload::Handle<BoxedLayer, Registry>>,
}

impl std::fmt::Debug for Logging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logging")
            .field("reloadable", &self.handle.is_some())
            .finish()
    }
}

fn layer(format: LogFormat) -> BoxedLayer {
    match format {
        LogFormat::Text => layer_to(format, std::io::stderr),
        LogFormat::Json => layer_to(format, std::io::stdout),
    }
}

/// The output layer of `format` writing to `writer`: JSON lines carry `timestamp`, `level`,
/// `target`, `message` and the event's fields at the top level.
pub fn layer_to<S, W>(format: LogFormat, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    }
}

/// Installs text logging on stderr with the `NFAI_LOG` filter (default `info`).
pub fn init() -> Logging {
    let filter = EnvFilter::try_from_env("NFAI_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (fmt, handle) = reload::Layer::new(layer(LogFormat::Text));
    // The filter applies to everything, so it sits above the reloadable output.
    let installed = tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init()
        .is_ok();
    Logging {
        handle: installed.then_some(handle),
    }
}

impl Logging {
    /// Switches the output to `format` (JSON lines on stdout, text on stderr).
    pub fn apply(&self, format: LogFormat) {
        if format == LogFormat::Text {
            return;
        }
        if let Some(h) = &self.handle
            && let Err(e) = h.reload(layer(format))
        {
            tracing::warn!("cannot switch the log format: {e}");
        }
    }
}

/// The format used when none is configured: JSON unless stdout is a terminal.
pub fn default_format() -> LogFormat {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        LogFormat::Text
    } else {
        LogFormat::Json
    }
}
