//! The chaos harness: N `multiagents run` processes on a private server of
//! one backend, W workflows driven through the load-test engine, and a
//! schedule of faults played meanwhile: `kill -9` and restart of an
//! instance, `SIGSTOP` of one past its ack timeout, `kill -9` and restart
//! of the server (not on Kafka: Tansu's memory storage would come back
//! empty), and (as root, on a private server) a network partition of one
//! instance past its ack timeout. Every step's side effect is an entry in an idempotency
//! ledger (the `ledger` worker, in worker state); the [`checker`] reads the
//! whole history and fails the run on any lost, stuck, wrongly ended,
//! out-of-order or unexplained doubly applied transaction.
//!
//! In CI it runs shortened (1 000 workflows, 2 instances, one fault of each
//! kind). By hand, larger (see docs/RELIABILITY.md):
//!
//! ```text
//! MULTIAGENTS_CHAOS_WORKFLOWS=10000 MULTIAGENTS_CHAOS_RATE=200 MULTIAGENTS_CHAOS_INSTANCES=3 \
//!   cargo test --features redis --test it faults::chaos -- --nocapture
//! ```
//!
//! `MULTIAGENTS_CHAOS_BIN=<path>` runs the instances from another
//! `multiagents` binary (a release build, say) than this build's.
//!
//! | module | owns |
//! |---|---|
//! | this file | the test: config, run, evidence |
//! | [`cluster`] | the processes and the fault schedule |
//! | [`network`] | the namespaces and bridge partitions are played on |
//! | [`checker`] | the history checker (pure, unit-tested) |

mod checker;
mod cluster;
// Partitions are played on private servers only (Redis, NATS, a Tansu
// with memory storage).
#[cfg_attr(
    not(any(feature = "redis", feature = "nats", feature = "kafka")),
    allow(dead_code)
)]
mod network;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use multiagents::loadtest::{self, InputTemplate, LoadSpec};
use multiagents::orchestrator::{StepKind, TransactionId};
use multiagents::store::StateStore;
use multiagents::{Config, ErrorKind, Runtime};
use multiagents_core::conformance::backend_url;

use super::{FaultBackend, PrivateServer};
use crate::support::{temp_dir, wasm};
use checker::{End, Entry};
use cluster::{Action, Cluster, Server};
use network::Network;

/// Size of a run: from the environment, else CI's shortened run.
struct Size {
    workflows: u64,
    rate: f64,
    instances: usize,
    /// `MULTIAGENTS_CHAOS_FAULTS=off`: no faults (the scaling figures).
    faults: bool,
}

impl Size {
    fn from_env() -> Size {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
        Size {
            workflows: var("MULTIAGENTS_CHAOS_WORKFLOWS").map_or(1_000, |v| v as u64),
            rate: var("MULTIAGENTS_CHAOS_RATE").unwrap_or(100.0),
            instances: var("MULTIAGENTS_CHAOS_INSTANCES").map_or(2, |v| v.max(1.0) as usize),
            faults: std::env::var("MULTIAGENTS_CHAOS_FAULTS").map_or(true, |v| v.trim() != "off"),
        }
    }
}

/// How long past the load test's timeout a transaction still running may
/// take to finish before it counts as stuck.
const STUCK_GRACE: Duration = Duration::from_secs(120);

/// One transaction in `FAIL_ONE_IN` fails at step `c` and is compensated.
const FAIL_ONE_IN: u64 = 8;

/// The ledger worker's rule ([`ledger`'s `fails`], the same FNV-1a): does
/// `tx` fail at step `c`?
fn fails(tx: &str) -> bool {
    let hash = tx.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % FAIL_ONE_IN == 0
}

/// The fault schedule, one cycle of about 25 s holding every kind of
/// fault, so the CI run meets each; repeated while submissions go on.
fn cycle() -> Vec<Action> {
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    vec![
        Action::Wait(ms(500)),
        Action::Kill(0, s(1)),
        Action::Wait(ms(500)),
        // Past the 2 s ack timeout on Redis and NATS: its deliveries go to
        // the others. (Within Kafka's 6 s session timeout: no rebalance.)
        Action::Pause(1, ms(3500)),
        Action::Wait(ms(500)),
        Action::RestartBroker(s(1)),
        Action::Wait(s(1)),
        Action::Kill(1, s(1)),
        Action::Wait(ms(500)),
        Action::Pause(0, ms(3500)),
        Action::Wait(ms(500)),
        Action::RestartBroker(s(1)),
        Action::Wait(s(1)),
        // Past the ack timeout too, but the instance runs on: its steps
        // finish and their results wait for the link (skipped without a
        // network of the harness's making).
        Action::Partition(1, ms(4000)),
        Action::Wait(s(1)),
    ]
}

/// Instance `tag`'s config: steps `a → b → c`, `a` and `b` compensated,
/// every step and compensation run by the `ledger` worker (one namespace).
fn config_text(url: &str, tag: &str) -> String {
    let wasm = wasm("ledger");
    format!(
        r#"{sections}
[workers.ledger]
path = "{wasm}"
namespace = "ledger"
# The ledger of a long run outgrows the default quota (about 4 keys per
# workflow), and every instance would update one usage record.
state_max_keys = 0
state_max_mb = 0
max_concurrent = 64
timeout = "30s"
memory_mb = 16

[workers.ledger.config]
instance = "{tag}"
fail_one_in = "{FAIL_ONE_IN}"
work_ms = "20"

[workers.ledger-undo]
path = "{wasm}"
namespace = "ledger"
state_max_keys = 0
state_max_mb = 0
max_concurrent = 64
timeout = "30s"
memory_mb = 16

[workers.ledger-undo.config]
role = "undo"
instance = "{tag}"
work_ms = "20"

[[workflows]]
name = "chaos"

{steps}"#,
        sections = super::runtime_sections(url),
        wasm = wasm.display(),
        steps = super::ledger_steps("30s", 8),
    )
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_under_kills_pauses_and_server_restarts_loses_nothing() {
    on_private_server::<super::redis::Redis>(Size::from_env().faults).await;
}

/// The same cluster with no fault: every effect must be applied exactly
/// once (any repeat is unexplained), across processes.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_without_faults_applies_each_effect_once() {
    on_private_server::<super::redis::Redis>(false).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_cluster_under_kills_pauses_and_server_restarts_loses_nothing() {
    on_private_server::<super::nats::Nats>(Size::from_env().faults).await;
}

/// Kafka-only. With faults, and a network of the run's own making where
/// this machine allows one: a private Tansu with memory storage on its
/// bridge, and partitions played on the instances; else the shared Tansu.
/// Never restarted either way: Tansu's memory storage would come back
/// empty, and its S3 storage, which survives a restart, lists a
/// partition's objects on every fetch, too slow for a long run's changelog
/// (a broker restart is `faults::server_restart`'s, on S3). Tansu never
/// assigns a newcomer to a group whose last member died, so kills take one
/// instance of several at a time.
///
/// The private broker's URL carries the fault tests' options
/// ([`KafkaInMemory`]'s `SHORT_TIMEOUTS`), not those of `KAFKA_URL`.
///
/// `fetch_wait` is 100 ms unless the URL names it: Tansu answers a fetch
/// with what it lists of a partition within the fetch's wait, so with the
/// default 10 ms a partition past a few tens of thousands of records is
/// answered empty for good and the changelog followers stall
/// (docs/kafka.md, docs/RELIABILITY.md "Kafka").
#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_only_cluster_under_kills_pauses_and_partitions_loses_nothing() {
    use super::kafka::KafkaInMemory;
    let Some(shared) = crate::support::fresh_namespace("KAFKA_URL", "prefix", "chaos") else {
        return;
    };
    let dir = temp_dir("chaos-kafka");
    let faults = Size::from_env().faults;
    // A network only with a broker to put on it: the instances in its
    // namespaces cannot reach the shared Tansu on the loopback address.
    let bin = std::env::var(KafkaInMemory::BIN_VAR).ok().filter(|_| faults);
    let network = bin.as_ref().and_then(|_| Network::create());
    let private = network
        .as_ref()
        .zip(bin)
        .map(|(net, bin)| PrivateServer::<KafkaInMemory>::start_on(Path::new(&bin), &dir, net.host().into()));
    let url = match &private {
        Some(server) => server.url(),
        None if shared.contains("fetch_wait=") => shared,
        None => super::with_options(&shared, "fetch_wait=100ms"),
    };
    // The private broker (if any) outlives the run: dropped after it.
    chaos("kafka", &url, None, network, &dir, faults).await;
    drop(private);
}

/// A run on a private server of `B`, restarted by the schedule. With
/// faults, the server listens on a bridge of the run's own making where
/// this machine allows one, and the instances run in namespaces on it
/// (partitions); else on the loopback address.
#[cfg(any(feature = "redis", feature = "nats"))]
async fn on_private_server<B: FaultBackend + Send + 'static>(faults: bool) {
    let Some(bin) = backend_url(B::BIN_VAR) else {
        return;
    };
    let dir = temp_dir(&format!("chaos-{}", B::NAME));
    let network = if faults { Network::create() } else { None };
    let server = match &network {
        Some(net) => PrivateServer::<B>::start_on(Path::new(&bin), &dir, net.host().into()),
        None => PrivateServer::<B>::start(Path::new(&bin), &dir),
    };
    let url = server.url();
    chaos(B::NAME, &url, Some(Box::new(server)), network, &dir, faults).await;
}

/// The run: instances on `url`, the schedule (server restarts only with a
/// `server`, partitions only with a `network`), the load, the checker.
async fn chaos(
    name: &str,
    url: &str,
    server: Option<Box<dyn Server>>,
    network: Option<Network>,
    dir: &Path,
    faults: bool,
) {
    let size = Size {
        faults,
        ..Size::from_env()
    };
    let restarts = server.is_some();
    let mut cluster = Cluster::start(server, network, dir, size.instances, |tag| config_text(url, tag));
    let partitions = cluster.partitions();
    let config = Config::from_toml_str(&config_text(url, "client"), None).expect("config");
    let client = Runtime::builder_from_config(&config)
        .expect("client")
        .client()
        .build()
        .await
        .expect("client runtime");

    let stop = Arc::new(AtomicBool::new(false));
    // Should this test panic before it joins the schedule, the schedule
    // ends its cycle and drops the cluster (instances, network) anyway.
    let _stop_on_unwind = StopOnDrop(stop.clone());
    let schedule = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            if size.faults {
                cluster.play(&cycle(), &stop);
            }
            cluster
        })
    };
    let started = Instant::now();
    let spec = LoadSpec::new(
        "chaos",
        size.rate,
        Duration::from_secs_f64(size.workflows as f64 / size.rate),
    )
    .with_input(InputTemplate::new(serde_json::json!({ "n": "{{n}}" })).expect("input"))
    .with_timeout(Duration::from_secs(180))
    .with_outcomes();
    // Faults while submissions go on (whole cycles); the last transactions
    // finish in peace.
    let submitting = spec.duration;
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(submitting).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let run = loadtest::run(&client, &spec, &|_| {}).await;
    stop.store(true, Ordering::Relaxed);
    stopper.abort();
    let mut cluster = schedule.join().expect("the fault schedule panicked");
    let report = run.expect("load test");
    cluster.assert_running();

    // Those the load test gave up on (not final within its timeout) get a
    // last grace: "stuck" means they never finish, "late" that they did.
    let mut ends = HashMap::new();
    let mut disagree = Vec::new();
    let mut late = 0;
    let grace = Instant::now() + STUCK_GRACE;
    for o in &report.outcomes {
        let end = match o.status {
            // What the events said must be what the store keeps.
            Some(s) => {
                let kept = end_of(&client, &o.tx).await;
                if kept != End::Final(s) {
                    disagree.push(format!("{}: ended {s}, the store says {kept:?}", o.tx));
                }
                kept
            }
            None => loop {
                let end = end_of(&client, &o.tx).await;
                if matches!(end, End::Final(_)) {
                    late += 1;
                }
                if !matches!(end, End::Stuck(_)) || Instant::now() >= grace {
                    break end;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            },
        };
        ends.insert(o.tx.clone(), end);
    }
    let ledger = read_ledger(client.store().as_ref()).await;
    // Those that ran though their submission was refused (the server went
    // down after the state was written) must end well too.
    let unacknowledged: Vec<String> = ledger
        .keys()
        .filter(|tx| !ends.contains_key(*tx))
        .cloned()
        .collect();
    for tx in &unacknowledged {
        ends.insert(tx.clone(), end_of(&client, tx).await);
    }
    let mut faults = cluster.faults().to_vec();
    faults.extend(cluster.rebalances());
    let failed = failed_attempts(&client, &checker::repeated(&ledger)).await;
    let verdict = checker::check(&ends, &ledger, &faults, &failed, fails);
    let kinds = |what: &str| faults.iter().filter(|f| f.what.starts_with(what)).count();
    eprintln!(
        "chaos {name}: {} instances, {} workflows at {}/s: {} refused while the server was down ({} of them ran); \
         faults: {} kill -9, {} SIGSTOP, {} server restarts, {} partitions ({} rebalances); {late} final only after the \
         load test's 180 s; all final {:.1?} after the start; \
         {:.0} workflows/s, latency p50 {:.1?} p99 {:.1?}\n{}",
        size.instances,
        size.workflows,
        size.rate,
        report.rejected,
        unacknowledged.len(),
        kinds("kill"),
        kinds("SIGSTOP"),
        kinds("server"),
        kinds("partition"),
        kinds("rebalance"),
        started.elapsed(),
        report.throughput,
        report.latency.p50,
        report.latency.p99,
        verdict.summary()
    );
    let logs: Vec<String> = cluster.logs().iter().map(|l| l.display().to_string()).collect();
    let played: Vec<String> = faults
        .iter()
        .map(|f| format!("{} {:?} {}..{}", f.what, f.target, f.from_ms, f.to_ms))
        .collect();
    assert!(
        verdict.clean(),
        "the history has problems (logs: {logs:?}; faults: {played:#?}):\n{}",
        verdict.summary()
    );
    assert!(
        disagree.is_empty(),
        "final states the store does not keep: {disagree:#?}"
    );
    assert_eq!(
        verdict.acknowledged as u64,
        report.sent - report.rejected + unacknowledged.len() as u64,
        "an outcome per accepted submission"
    );
    assert!(
        verdict.compensated > 0,
        "no saga failed: the compensations went unchecked"
    );
    let kinds_played = ["kill", "SIGSTOP", "server", "partition"];
    for what in kinds_played
        .iter()
        .filter(|w| size.faults && (restarts || **w != "server") && (partitions || **w != "partition"))
    {
        assert!(kinds(what) > 0, "the run ended before a {what} fault was played");
    }
    client
        .shutdown(Duration::from_secs(5))
        .await
        .expect("client shutdown");
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How `tx`, not final when the load test gave up on it, stands now.
async fn end_of(client: &Runtime, tx: &str) -> End {
    match client.status(&TransactionId::from(tx)).await {
        Ok(s) if s.status.is_final() => End::Final(s.status),
        Ok(s) => End::Stuck(s.status),
        Err(e) if e.kind() == ErrorKind::NotFound => End::Missing,
        Err(e) => panic!("cannot read the state of {tx}: {e}"),
    }
}

/// The attempts of `txs` that their histories record as failed.
async fn failed_attempts(client: &Runtime, txs: &[String]) -> HashSet<checker::FailedAttempt> {
    let mut failed = HashSet::new();
    for tx in txs {
        let history = client
            .history(&TransactionId::from(tx.as_str()))
            .await
            .unwrap_or_else(|e| panic!("cannot read the history of {tx}: {e}"));
        for a in history {
            if let Some(outcome) = a.outcome.as_deref().filter(|o| *o != "ok") {
                if failed.len() < 3 {
                    eprintln!(
                        "a repeated effect's failed attempt: {tx} {} #{}: {outcome}",
                        a.step, a.attempt
                    );
                }
                let role = match a.kind {
                    StepKind::Forward => "do",
                    StepKind::Compensate => "undo",
                };
                failed.insert((tx.clone(), role.to_string(), a.step, a.attempt));
            }
        }
    }
    failed
}

/// Every ledger entry, by transaction (keys `kv/ledger/ledger/<tx>/<n>`;
/// the `<tx>/seq` counters are skipped).
async fn read_ledger(store: &dyn StateStore) -> HashMap<String, Vec<Entry>> {
    const PREFIX: &str = "kv/ledger/ledger/";
    let mut entries: HashMap<String, Entry> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .scan(PREFIX, cursor.as_deref(), 1_000)
            .await
            .expect("scan the ledger");
        for (key, value) in page.entries {
            let rest = key.strip_prefix(PREFIX).unwrap_or(&key);
            let Some((tx, seq)) = rest.rsplit_once('/') else {
                continue;
            };
            let Ok(seq) = seq.parse::<u64>() else { continue };
            let text = String::from_utf8_lossy(&value.value);
            let entry = Entry::parse(seq, &text).unwrap_or_else(|| panic!("ledger entry {key}: {text:?}"));
            entries.insert(format!("{tx}/{seq}"), entry);
        }
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    let mut ledger: HashMap<String, Vec<Entry>> = HashMap::new();
    for (key, entry) in entries {
        let tx = key
            .rsplit_once('/')
            .map_or(key.as_str(), |(tx, _)| tx)
            .to_string();
        ledger.entry(tx).or_default().push(entry);
    }
    ledger
}
