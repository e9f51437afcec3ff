//! OTLP export of the orchestrator's trace spans (feature `otel`).
//!
//! The orchestrator opens a span per submission, step run and landed
//! result, and propagates each transaction's W3C `traceparent` in its
//! envelopes ([`multiagents_core::trace`]). This module exports those
//! spans through `tracing-opentelemetry` to an OTLP/HTTP collector, and
//! installs the [`Linker`] that makes every span a child of its remote
//! parent, so the spans of one transaction, from every instance, form one
//! trace in the collector.
//!
//! `multiagents run` does all of it from `[telemetry]`. A host that embeds
//! the runtime builds its own subscriber:
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt as _;
//! use tracing_subscriber::util::SubscriberInitExt as _;
//! use tracing_subscriber::Layer as _;
//!
//! # fn main() -> multiagents::Result<()> {
//! let section = multiagents::config::TelemetrySection::otlp("http://127.0.0.1:4318");
//! let export = multiagents::telemetry::Export::start(&section)?.expect("an endpoint is set");
//! tracing_subscriber::registry()
//!     .with(tracing_opentelemetry::layer().with_tracer(export.tracer()).with_filter(multiagents::telemetry::spans()))
//!     .init();
//! multiagents::telemetry::install_linker()?;
//! // … run; at the end:
//! export.shutdown();
//! # Ok(()) }
//! ```

use multiagents_core::trace::{Linker, TARGET, TraceParent};
use multiagents_core::{Error, ErrorKind, Result};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::config::TelemetrySection;

/// How long an export may take before it is dropped.
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A running span export (batched, on its own thread).
#[derive(Debug)]
pub struct Export {
    provider: SdkTracerProvider,
    service_name: String,
}

impl Export {
    /// Starts exporting to `section`'s collector; `Ok(None)` when it sets
    /// none. Nothing is sent until spans end; a collector that is down
    /// costs dropped spans (logged by the exporter), never a failed step.
    ///
    /// # Errors
    /// `Config` for an endpoint the exporter refuses.
    pub fn start(section: &TelemetrySection) -> Result<Option<Export>> {
        let Some(url) = section.traces_url() else {
            return Ok(None);
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Config, format!("cannot export spans to {url}: {e}"))
                    .with_operation("telemetry.start")
            })?;
        Ok(Some(Export::with_provider(
            SdkTracerProvider::builder()
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(section.service_name.clone())
                        .build(),
                )
                .with_batch_exporter(exporter)
                .build(),
            &section.service_name,
        )))
    }

    /// An export through a provider built elsewhere (tests use an
    /// in-memory exporter).
    pub fn with_provider(provider: SdkTracerProvider, service_name: &str) -> Export {
        Export {
            provider,
            service_name: service_name.to_string(),
        }
    }

    /// The tracer for `tracing_opentelemetry::layer().with_tracer(…)`.
    pub fn tracer(&self) -> Tracer {
        self.provider.tracer(self.service_name.clone())
    }

    /// Sends what is buffered and stops. Blocks (up to the export
    /// timeout): call it off the async runtime's threads, or at exit.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "cannot flush the last spans");
        }
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "the span export did not stop cleanly");
        }
    }
}

/// The filter for the OpenTelemetry layer: the orchestrator's trace spans
/// (`multiagents::trace`, at `DEBUG`), whatever the log filter is.
pub fn spans() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::DEBUG)
}

/// Installs the [`Linker`] that joins the orchestrator's spans to their
/// remote parents in the OpenTelemetry layer. Once per process.
///
/// # Errors
/// `Conflict` if a linker is already installed.
pub fn install_linker() -> Result<()> {
    multiagents_core::trace::install(Box::new(OtelLinker))
}

/// Joins spans through `tracing-opentelemetry`.
struct OtelLinker;

impl Linker for OtelLinker {
    fn link(&self, span: &tracing::Span, parent: Option<&TraceParent>) -> Option<TraceParent> {
        if let Some(parent) = parent {
            let flags = if parent.sampled() {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let remote = SpanContext::new(
                TraceId::from_bytes(parent.trace_id()),
                SpanId::from_bytes(parent.span_id()),
                flags,
                true,
                TraceState::default(),
            );
            // Fails only without the layer (or for a filtered-out span):
            // then the span keeps the ids the orchestrator gives it.
            span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote))
                .ok()?;
        }
        let cx = span.context();
        let own = cx.span().span_context().clone();
        if !own.is_valid() {
            return None;
        }
        TraceParent::from_ids(
            own.trace_id().to_bytes(),
            own.span_id().to_bytes(),
            own.is_sampled(),
        )
        .ok()
    }
}
