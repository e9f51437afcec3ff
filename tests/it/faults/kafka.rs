//! The fault tests' [`Kafka`]: private Tansu brokers (as
//! [`PrivateServer<Kafka>`](super::PrivateServer)) that keep their data in
//! S3, in a bucket of their own on the S3 server `scripts/services.sh up`
//! starts (moto's, `S3_URL`). Tansu's memory storage loses everything when
//! it stops; on S3 a broker killed with `kill -9` and restarted finds its
//! topics, records and committed offsets again (they live in another
//! process). Tansu acknowledges a produce once S3 has stored it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use multiagents::kafka::{KafkaConfig, KafkaTransport};
use multiagents::transport::Transport;

use super::{FaultBackend, namespaced};

/// Kafka (`kafka://`), on Tansu with S3 storage.
pub(super) struct Kafka;

/// The variable holding the S3 server's URL.
pub(super) const S3_VAR: &str = "S3_URL";

impl FaultBackend for Kafka {
    const NAME: &'static str = "kafka";
    const URL_VAR: &'static str = "KAFKA_URL";
    const BIN_VAR: &'static str = "KAFKA_BROKER_BIN";
    const PREFIX_OPTION: &'static str = "prefix";
    /// A dead member leaves its groups within 6 s (its partitions' work is
    /// read again by the others); calls into a dead broker fail within 5 s.
    ///
    /// And a fetch wait long enough for Tansu's S3 storage: it answers a
    /// fetch with what it could list and read of the partition's objects
    /// within the fetch's wait, and listing takes longer as the partition
    /// grows (~18 ms for 80 records on moto, on a quiet machine). With the
    /// default 10 ms, a partition past ~50 records is answered empty on
    /// every fetch from then on, and the store's changelog follower stops
    /// there (see docs/kafka.md, "Tansu with S3 storage").
    const SHORT_TIMEOUTS: &'static str = "session_timeout=6s&request_timeout=5s&fetch_wait=500ms";

    /// `tansu broker` on `addr`, its data in a bucket of its own on the S3
    /// server at `S3_URL`: made at the first start and named in
    /// `dir/s3-bucket`, where a restart finds it again.
    fn server_command(bin: &Path, addr: SocketAddr, dir: &Path) -> Command {
        let s3 = std::env::var(S3_VAR).unwrap_or_else(|_| {
            panic!(
                "{S3_VAR} is not set: `scripts/services.sh up` starts the S3 server Tansu keeps its data in"
            )
        });
        let named = dir.join("s3-bucket");
        let bucket = match std::fs::read_to_string(&named) {
            Ok(bucket) => bucket,
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let bucket = format!("tansu-{}-{nanos}", std::process::id());
                make_bucket(&s3, &bucket);
                std::fs::write(&named, &bucket).expect("note the bucket's name");
                bucket
            }
        };
        let listener = format!("tcp://{addr}");
        let mut cmd = Command::new(bin);
        cmd.args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .arg("--storage-engine")
            .arg(format!("s3://{bucket}/"))
            // moto checks no credentials; the S3 client wants some.
            .env("AWS_ENDPOINT", &s3)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "multiagents")
            .env("AWS_SECRET_ACCESS_KEY", "multiagents")
            .env("AWS_DEFAULT_REGION", "us-east-1");
        cmd
    }

    /// It answers a Kafka `ApiVersions` request.
    fn server_ready(addr: SocketAddr) -> bool {
        api_versions(addr)
    }

    fn server_url(addr: SocketAddr) -> String {
        format!("kafka://{addr}")
    }

    /// A transport on the namespace.
    type Probe = KafkaTransport;

    async fn probe(base: &str, prefix: &str) -> Self::Probe {
        let url = namespaced::<Kafka>(base, prefix, "");
        let config = KafkaConfig::from_url(&url).expect("a Kafka URL");
        KafkaTransport::with_config(config)
            .await
            .expect("a Kafka transport for the evidence")
    }

    /// The group's unsettled messages, as the transport counts them.
    async fn held(probe: &Self::Probe, topic: &str, group: &str) -> Option<u64> {
        let depth = probe.queue_depth(topic, group).await.ok()??;
        Some(depth.in_flight as u64)
    }

    /// Nothing: the topics live in the private broker's bucket.
    fn clean_up(_base: &str, _prefix: &str) {}
}

/// Kafka on a private Tansu with **memory** storage: it cannot be restarted
/// (it would come back empty), but its fetches stay cheap as partitions
/// grow, unlike S3 storage's; the chaos run starts one on its bridge to
/// play network partitions on Kafka.
pub(super) struct KafkaInMemory;

impl FaultBackend for KafkaInMemory {
    const NAME: &'static str = "kafka-memory";
    const URL_VAR: &'static str = Kafka::URL_VAR;
    const BIN_VAR: &'static str = Kafka::BIN_VAR;
    const PREFIX_OPTION: &'static str = Kafka::PREFIX_OPTION;
    /// As [`Kafka`]'s, with a 100 ms fetch wait: Tansu answers a fetch with
    /// what it lists of a partition within the wait, so 10 ms stalls a
    /// long run's followers (docs/kafka.md), and it answers only when the
    /// wait ends, so every hop waits about half of it.
    const SHORT_TIMEOUTS: &'static str = "session_timeout=6s&request_timeout=5s&fetch_wait=100ms";

    fn server_command(bin: &Path, addr: SocketAddr, _dir: &Path) -> Command {
        let listener = format!("tcp://{addr}");
        let mut cmd = Command::new(bin);
        cmd.args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", "memory://tansu/"]);
        cmd
    }

    fn server_ready(addr: SocketAddr) -> bool {
        Kafka::server_ready(addr)
    }

    fn server_url(addr: SocketAddr) -> String {
        Kafka::server_url(addr)
    }

    type Probe = KafkaTransport;

    async fn probe(base: &str, prefix: &str) -> Self::Probe {
        Kafka::probe(base, prefix).await
    }

    async fn held(probe: &Self::Probe, topic: &str, group: &str) -> Option<u64> {
        Kafka::held(probe, topic, group).await
    }

    /// Nothing: the topics go with the private broker.
    fn clean_up(_base: &str, _prefix: &str) {}
}

/// `PUT /<bucket>` on the S3 server at `url` (`http://host:port`). The
/// buckets are not deleted: a test's data is small, and moto's memory goes
/// with `scripts/services.sh down`.
fn make_bucket(url: &str, bucket: &str) {
    let host = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{S3_VAR} must be http://host:port, not {url}"))
        .trim_end_matches('/');
    let mut s =
        TcpStream::connect(host).unwrap_or_else(|e| panic!("cannot reach the S3 server at {url}: {e}"));
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    write!(
        s,
        "PUT /{bucket} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("send PUT bucket");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer.split_whitespace().nth(1).unwrap_or_default();
    assert!(
        status == "200",
        "the S3 server at {url} did not make bucket {bucket}:\n{answer}"
    );
}

/// Whether a Kafka broker on `addr` answers `ApiVersions` (key 18, v0)
/// with our correlation id.
fn api_versions(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    // size 11: api key 18, version 0, correlation id 1, client id "p"
    let request = b"\x00\x00\x00\x0b\x00\x12\x00\x00\x00\x00\x00\x01\x00\x01p";
    let mut head = [0u8; 8];
    s.write_all(request).is_ok() && s.read_exact(&mut head).is_ok() && head[4..8] == [0, 0, 0, 1]
}
