//! The fault tests' [`Nats`]: private `nats-server`s (as
//! [`PrivateServer<Nats>`](super::PrivateServer)) with JetStream fsyncing
//! every write, and [`NatsTransport::pending`] for evidence.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use multiagents_nats::{NatsConfig, NatsTransport};

use super::{FaultBackend, namespaced};

/// NATS with JetStream (`nats://`).
pub(super) struct Nats;

impl FaultBackend for Nats {
    const NAME: &'static str = "nats";
    const URL_VAR: &'static str = "NATS_URL";
    const BIN_VAR: &'static str = "NATS_SERVER_BIN";
    const PREFIX_OPTION: &'static str = "prefix";
    const SHORT_TIMEOUTS: &'static str = "ack_timeout=2s&request_timeout=2s&connect_timeout=1s";

    /// `nats-server --config <dir>/nats.conf`, the config written here:
    /// JetStream in `<dir>/jetstream` with `sync_interval: always` (fsync
    /// before every acknowledgement; the default fsyncs every 2 minutes, and
    /// acknowledged writes can die with the process), and the services
    /// script's `max_payload`.
    fn server_command(bin: &Path, addr: SocketAddr, dir: &Path) -> Command {
        let store = dir.join("jetstream");
        let store = store.to_str().expect("a UTF-8 temporary directory");
        assert!(
            !store.contains(['"', '\\']),
            "{store} cannot be quoted in a NATS config"
        );
        let config = dir.join("nats.conf");
        let text = format!(
            "listen: {addr}\nmax_payload: 8MB\njetstream {{\n    store_dir: \"{store}\"\n    sync_interval: always\n}}\n"
        );
        std::fs::write(&config, text).expect("write the nats-server config");
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(config);
        cmd
    }

    /// Its greeting (`INFO {…}`, sent to every new client) says
    /// `"jetstream":true`. (nats-server enables JetStream, recovering its
    /// streams from `store_dir`, before it accepts clients.)
    fn server_ready(addr: SocketAddr) -> bool {
        let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).is_ok()
            && line.starts_with("INFO {")
            && line.contains("\"jetstream\":true")
    }

    fn server_url(addr: SocketAddr) -> String {
        format!("nats://{addr}")
    }

    /// A transport on the namespace.
    type Probe = NatsTransport;

    async fn probe(base: &str, prefix: &str) -> Self::Probe {
        let url = namespaced::<Nats>(base, prefix, "");
        let config = NatsConfig::from_url(&url).expect("a NATS URL");
        NatsTransport::with_config(config)
            .await
            .expect("a NATS transport for the evidence")
    }

    /// The group's durable consumer's `num_ack_pending`.
    async fn held(probe: &Self::Probe, topic: &str, group: &str) -> Option<u64> {
        probe.pending(topic, group).await.ok()
    }

    /// Nothing: a test's streams and buckets stay on the server (each test
    /// has a fresh prefix).
    fn clean_up(_base: &str, _prefix: &str) {}
}
