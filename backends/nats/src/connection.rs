//! Connecting: credentials, TLS, timeouts, and the checks that the server
//! can serve this backend (JetStream on, version 2.11 or later).

use std::sync::Arc;

use async_nats::jetstream;
use async_nats::{Client, ConnectOptions};
use multiagents_core::{Error, ErrorKind, Result};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::{Auth, NatsConfig};
use crate::error;
use crate::names::Names;
use crate::publish::{CLIENT_INFLIGHT, MAX_UNACKED};

/// Oldest server with per-message TTLs (KV TTLs need them).
const MIN_SERVER: (u64, u64) = (2, 11);

/// A connection and what every part of the backend shares with it.
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) js: jetstream::Context,
    pub(crate) config: Arc<NatsConfig>,
    pub(crate) names: Arc<Names>,
    /// Cancelled by `close()`: background tasks stop, calls fail `Closed`.
    pub(crate) closed: CancellationToken,
    /// The budget of unacknowledged publishes (see `publish`).
    pub(crate) unacked: Arc<Semaphore>,
}

impl Conn {
    /// Connects with `config` (validated first).
    pub(crate) async fn open(config: NatsConfig) -> Result<Conn> {
        const OP: &str = "nats.connect";
        config.validate()?;
        let shown = config.shown_url();
        let mut options = ConnectOptions::new()
            .connection_timeout(config.connect_timeout)
            .request_timeout(Some(config.request_timeout))
            .name(config.client_name.clone().unwrap_or_else(|| "multiagents".into()));
        options = match &config.auth {
            Auth::None => options,
            Auth::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.clone())
            }
            Auth::Token(token) => options.token(token.clone()),
            Auth::CredsFile(path) => options.credentials_file(path).await.map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("cannot read the NATS credentials file {}: {e}", path.display()),
                )
                .with_operation(OP)
                .with_context("creds_file", path.display())
            })?,
        };
        if let Some(ca) = &config.tls_ca_file {
            if !ca.is_file() {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("the NATS tls_ca_file {} is not a readable file", ca.display()),
                )
                .with_operation(OP)
                .with_context("tls_ca_file", ca.display()));
            }
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if config.tls_required {
            options = options.require_tls(true);
        }
        let client = options
            .connect(config.url.as_str())
            .await
            .map_err(|e| error::connect(OP, e).with_context("url", &shown))?;
        check_version(&client, &shown)?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout)
            .max_ack_inflight(CLIENT_INFLIGHT)
            .build(client.clone());
        js.query_account().await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("JetStream is not usable on {shown} (start nats-server with -js): {e}"),
            )
            .with_operation(OP)
            .with_context("url", &shown)
            .with_source(e)
        })?;
        Ok(Conn {
            names: Arc::new(Names::new(&config.prefix)),
            config: Arc::new(config),
            client,
            js,
            closed: CancellationToken::new(),
            unacked: Arc::new(Semaphore::new(MAX_UNACKED)),
        })
    }

    /// The largest value or payload to accept: the configured maximum,
    /// bounded by the server's `max_payload` less `room` for what goes
    /// around it.
    pub(crate) fn max_payload(&self, room: usize) -> usize {
        let server = self.client.server_info().max_payload;
        self.config.max_payload.min(server.saturating_sub(room))
    }

    /// `Closed` once [`close`](Self::close) ran.
    pub(crate) fn check_open(&self, op: &'static str) -> Result<()> {
        if self.closed.is_cancelled() {
            return Err(Error::new(ErrorKind::Closed, "the NATS backend was closed").with_operation(op));
        }
        Ok(())
    }

    /// Stops background tasks, flushes what was published, and closes the
    /// connection (its subscriptions drained): the client's connection
    /// task ends too, not only when the last handle is dropped.
    pub(crate) async fn close(&self) -> Result<()> {
        if self.closed.is_cancelled() {
            return Ok(());
        }
        self.closed.cancel();
        let flushed = self
            .client
            .flush()
            .await
            .map_err(|e| error::other("nats.close", e));
        let drained = self
            .client
            .drain()
            .await
            .map_err(|e| error::other("nats.close", e));
        flushed.and(drained)
    }
}

fn check_version(client: &Client, shown: &str) -> Result<()> {
    let info = client.server_info();
    let mut parts = info
        .version
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version < MIN_SERVER {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "nats-server {} at {shown} is too old: this backend needs {}.{} or later \
                 (per-message TTLs); scripts/services.sh installs 2.15",
                info.version, MIN_SERVER.0, MIN_SERVER.1
            ),
        )
        .with_operation("nats.connect")
        .with_context("server_version", &info.version));
    }
    Ok(())
}
