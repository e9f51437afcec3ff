//! Errors a user meets: bad settings and options (typed `Config`, secrets
//! hidden), brokers that do not answer (retryable), bad input.

use std::time::Duration;

use multiagents_core::{ErrorKind, SubscribeMode, SubscribeOptions, Transport};
use multiagents_kafka::{KafkaConfig, KafkaTransport};

use super::support::{config, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_brokers_fail_the_connect_with_a_retryable_error() {
    // Nothing listens on port 1.
    let mut cfg = KafkaConfig::from_url("kafka://127.0.0.1:1?rdkafka.sasl.password=hunter2").expect("valid");
    cfg.request_timeout = Duration::from_secs(1);
    let err = KafkaTransport::with_config(cfg).await.expect_err("no broker");
    assert!(
        matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "{err}"
    );
    assert!(err.is_retryable(), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_librdkafka_option_is_a_config_error_naming_it() {
    let cfg = KafkaConfig::new("127.0.0.1:9092").with_client_option("no.such.option", "1");
    let err = KafkaTransport::with_config(cfg).await.expect_err("bad option");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert_eq!(err.context_value("key"), Some("no.such.option"), "{err}");
    let cfg = KafkaConfig::new("127.0.0.1:9092")
        .with_client_option("sasl.password", "hunter2")
        .with_client_option("acks", "maybe");
    let err = KafkaTransport::with_config(cfg).await.expect_err("bad value");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_refused_before_anything_is_sent() {
    let Some(url) = url() else { return };
    let t = KafkaTransport::with_config(config(&url, "names"))
        .await
        .expect("connect");
    let err = t
        .subscribe(
            "bad topic",
            SubscribeMode::queue("g"),
            SubscribeOptions::default(),
        )
        .await
        .expect_err("bad topic");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = t.dead_letters("a..b", 1).await.expect_err("bad topic");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    t.close().await.expect("close");
}
