//! The client role: submitting, reading, waiting for, cancelling and
//! listing transactions, and watching their events. Every
//! [`Orchestrator`] has it; one made by [`Orchestrator::connect`] has only
//! it (it serves nothing).

use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::Instrument;

use super::api::{SagaPage, SagaSnapshot, TransactionId};
use super::coordinator::Committed;
use super::engine::{now_ms, topic};
use super::saga::SagaState;
use super::{Orchestrator, OrchestratorConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::store::Expected;
use crate::trace::TraceParent;
use crate::transport::{SubscribeMode, SubscribeOptions, Subscription};

impl Orchestrator {
    /// Its settings (prefix, retention, input cap, …).
    pub fn config(&self) -> &OrchestratorConfig {
        &self.shared.config
    }

    /// Starts a transaction of `workflow` with `input` (a JSON object, the
    /// initial context). Returns once its state is durable.
    ///
    /// Its trace continues the caller's current span when a trace exporter
    /// is installed ([`crate::trace`]), or starts a new one.
    pub async fn execute(&self, workflow: &str, input: serde_json::Value) -> Result<TransactionId> {
        self.execute_in_trace(workflow, input, None).await
    }

    /// [`execute`](Self::execute) within the trace of `parent` (a W3C
    /// `traceparent` the caller received, e.g. from an HTTP request): every
    /// span of the transaction, on every instance, joins that trace.
    /// `None` is [`execute`](Self::execute).
    pub async fn execute_in_trace(
        &self,
        workflow: &str,
        input: serde_json::Value,
        parent: Option<TraceParent>,
    ) -> Result<TransactionId> {
        let s = &self.shared;
        if !s.accepting.load(Ordering::Acquire) {
            return Err(
                Error::new(ErrorKind::Closed, "the runtime is shutting down").with_operation("execute")
            );
        }
        if let Some(guard) = s.memory.get() {
            guard.admit("execute")?;
        }
        let wf = s.workflow(workflow).map_err(|e| e.with_operation("execute"))?;
        if !input.is_object() {
            return Err(
                Error::new(ErrorKind::InvalidInput, "workflow input must be a JSON object")
                    .with_operation("execute")
                    .with_context("workflow", workflow),
            );
        }
        let tx = TransactionId::new();
        let now = now_ms();
        let mut state = SagaState::new(&tx, &wf, input, now);
        // The limit is on the input as CBOR (with the payload frame's tag
        // byte), before any compression: the encoding the state write and
        // the first step then use.
        let size = state.input.cbor().map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                "workflow input cannot be encoded as CBOR",
            )
            .with_operation("execute")
            .with_source(e)
        })?;
        crate::validate::size("workflow input", size.len() + 1, s.config.max_input)
            .map_err(|e| e.with_operation("execute").with_context("workflow", workflow))?;
        let (span, trace) = crate::trace::submit_span(workflow, &tx.0, parent);
        tracing::debug!(parent: &span, "submitting");
        state.trace = Some(trace);
        let mut fx = s.effects(0);
        state.start(&wf, now, &mut fx);
        let commit = s.commit(Expected::Absent, None, state, fx).instrument(span);
        let committed = s
            .host
            .profiler()
            .time(crate::profile::Op::Coordinate, "submit", commit)
            .await?;
        match committed {
            Committed::Written => Ok(tx),
            Committed::Conflict(e) => Err(e.with_operation("execute")),
            Committed::TooLate => Err(Error::new(
                ErrorKind::Unavailable,
                "the transport took too long to accept the first step; nothing was started",
            )
            .with_operation("execute")
            .with_context("workflow", workflow)),
        }
    }

    async fn load(&self, tx: &TransactionId) -> Result<SagaState> {
        let s = &self.shared;
        // Fresh: another instance sharing the store may have advanced it.
        let got = s.store.get_fresh(&s.saga_key(&tx.0)).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("no transaction {tx} (unknown, or expired after its retention)"),
            )
            .with_context("tx", tx)
        })?;
        s.codec.decode(&got.value)
    }

    /// The transaction's state and history.
    pub async fn status(&self, tx: &TransactionId) -> Result<SagaSnapshot> {
        let state = self.load(tx).await?;
        let wf = self.shared.workflow(&state.workflow).ok();
        Ok(state.snapshot(wf.as_deref(), true))
    }

    /// Waits until the transaction is final, at most `timeout`.
    pub async fn wait(&self, tx: &TransactionId, timeout: Duration) -> Result<SagaSnapshot> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let snap = self.status(tx).await?;
            if snap.status.is_final() {
                return Ok(snap);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("transaction {tx} is still {} after {timeout:?}", snap.status),
                )
                .with_context("tx", tx));
            }
            // Another instance may advance it: poll as well as listen.
            let nap = (deadline - now).min(Duration::from_millis(20));
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    /// Cancels a running transaction: its completed steps are compensated
    /// (newest first) and it ends `cancelled`.
    pub async fn cancel(&self, tx: &TransactionId) -> Result<()> {
        self.load(tx).await?; // NotFound with a clear message
        let mut outcome = Ok(());
        self.shared
            .advance(&tx.0, |state, _, wf, now, fx| match state.cancel(wf, now, fx) {
                Ok(()) => Ok(true),
                Err(e) => {
                    outcome = Err(e);
                    Ok(false)
                }
            })
            .await?;
        outcome
    }

    /// Lists transactions (newest ids last), `limit` per page.
    pub async fn list(&self, cursor: Option<&str>, limit: usize) -> Result<SagaPage> {
        let s = &self.shared;
        let prefix = s.config.saga_key_prefix();
        let page = s.store.scan(&prefix, cursor, limit).await?;
        let mut items = Vec::with_capacity(page.entries.len());
        for (_, v) in page.entries {
            let state: SagaState = s.codec.decode(&v.value)?;
            let wf = s.workflow(&state.workflow).ok();
            items.push(state.snapshot(wf.as_deref(), false));
        }
        Ok(SagaPage {
            items,
            cursor: page.cursor,
        })
    }

    /// Subscribes to lifecycle events (decode with [`super::Event::decode`]).
    pub async fn events(&self) -> Result<Subscription> {
        let t = topic(&self.shared.config.prefix, "events");
        self.shared
            .transport
            .subscribe(&t, SubscribeMode::Broadcast, SubscribeOptions::default())
            .await
    }
}
