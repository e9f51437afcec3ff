//! Connecting and configuring go wrong with typed errors: an unreachable
//! server (`Unavailable`), refused credentials (`PermissionDenied`, not
//! retried), bad settings (`Config` naming the option). A password never
//! shows in an error.

use std::time::Duration;

use bytes::Bytes;
use multiagents_core::conformance::unique;
use multiagents_core::{Envelope, Error, ErrorKind, StateStore, SubscribeMode, SubscribeOptions, Transport};
use multiagents_redis::{RedisConfig, RedisStore, RedisTransport};

use crate::support::{Server, WAIT, next, server_bin, url};

fn assert_hidden(err: &Error, secret: &str) {
    for shown in [err.to_string(), format!("{err:?}"), err.message().to_string()] {
        assert!(!shown.contains(secret), "the password shows: {shown}");
    }
    for (k, v) in err.context() {
        assert!(!v.contains(secret), "the password shows in context {k}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable_and_the_password_is_hidden() {
    let Some(url) = url() else { return };
    // Port 1: nothing listens there.
    let config = RedisConfig::new("redis://:secret@127.0.0.1:1")
        .with_key_prefix(unique("unreachable"))
        .with_connect_attempts(2)
        .with_connect_timeout(Duration::from_secs(1));
    let store = tokio::time::timeout(WAIT, RedisStore::with_config(config.clone()))
        .await
        .expect("connect gives up in bounded time");
    let err = store.expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(err.message().contains("redis://:***@127.0.0.1:1"), "{err}");
    assert_eq!(err.context_value("attempts"), Some("2"), "{err}");
    assert_hidden(&err, "secret");

    let transport = tokio::time::timeout(WAIT, RedisTransport::with_config(config))
        .await
        .expect("connect gives up in bounded time");
    let err = transport.expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_hidden(&err, "secret");

    // The real server is unaffected.
    let store = RedisStore::with_config(RedisConfig::new(url).with_key_prefix(unique("reachable")))
        .await
        .expect("connect");
    store.put("k", Bytes::from_static(b"v"), None).await.expect("put");
}

/// The error of connecting (a store and a transport) with `url`, or of
/// the first command when connecting itself succeeds.
async fn refused(url: &str) -> Vec<Error> {
    let config = RedisConfig::new(url)
        .with_key_prefix(unique("auth"))
        .with_connect_attempts(3)
        .with_connect_timeout(Duration::from_secs(2));
    let store = tokio::time::timeout(WAIT, RedisStore::with_config(config.clone()))
        .await
        .expect("store connect in bounded time");
    let store_err = match store {
        Err(e) => e,
        Ok(store) => store
            .get("k")
            .await
            .expect_err("a command without valid credentials"),
    };
    let transport = tokio::time::timeout(WAIT, RedisTransport::with_config(config))
        .await
        .expect("transport connect in bounded time");
    let transport_err = match transport {
        Err(e) => e,
        Ok(t) => t
            .publish(Envelope::new("t", "k", &b"x"[..]))
            .await
            .expect_err("a publish without valid credentials"),
    };
    vec![store_err, transport_err]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_permission_denied_and_not_retried() {
    let test = "refused_credentials_are_permission_denied_and_not_retried";
    if url().is_none() {
        return;
    }
    let Some(bin) = server_bin(test) else { return };
    let server = Server::start(
        &bin,
        &["--requirepass", "right", "--save", "", "--appendonly", "no"],
        Some("right"),
    )
    .await;

    for err in refused(&server.url_with_password("wrong-password")).await {
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "wrong password: {err}");
        assert!(!err.is_retryable(), "{err}");
        assert_hidden(&err, "wrong-password");
        if let Some(attempts) = err.context_value("attempts") {
            assert_eq!(attempts, "1", "refused credentials are not retried: {err}");
        }
    }
    for err in refused(&server.url()).await {
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "no password: {err}");
        assert!(!err.is_retryable(), "{err}");
        if let Some(attempts) = err.context_value("attempts") {
            assert_eq!(attempts, "1", "refused credentials are not retried: {err}");
        }
    }

    // The right password works on the same server.
    let config = RedisConfig::new(server.url_with_password("right")).with_key_prefix(unique("auth-ok"));
    let store = RedisStore::with_config(config.clone())
        .await
        .expect("connect with the right password");
    let v = store.put("k", Bytes::from_static(b"v"), None).await.expect("put");
    assert_eq!(store.get("k").await.expect("get").map(|x| x.version), Some(v));
    let transport = RedisTransport::with_config(config).await.expect("connect");
    let mut sub = transport
        .subscribe("t", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    transport
        .publish(Envelope::new("t", "k", &b"x"[..]))
        .await
        .expect("publish");
    next(&mut sub, "with the right password")
        .await
        .ack()
        .await
        .expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_config_errors_naming_the_option() {
    let Some(url) = url() else { return };
    let base = url.split('?').next().unwrap_or(&url).to_string();
    for (query, key) in [
        ("ack_timeot=1s", "ack_timeot"),
        ("ack_timeout=soon", "ack_timeout"),
        ("max_deliveries=many", "max_deliveries"),
        ("max_deliveries=0", "max_deliveries"),
        ("block=2min", "block"),
        ("key_prefix=a:b", "key_prefix"),
        ("pool_size=-1", "pool_size"),
    ] {
        let err = RedisConfig::from_url(&format!("{base}?{query}")).expect_err(query);
        assert_eq!(err.kind(), ErrorKind::Config, "{query}: {err}");
        assert_eq!(err.context_value("key"), Some(key), "{query}: {err}");
        assert!(err.to_string().contains(key), "{query}: {err}");
    }

    // A bad configuration fails before connecting, with the same error.
    let bad = RedisConfig::new(&base).with_key_prefix("has space");
    let err = RedisStore::with_config(bad.clone())
        .await
        .expect_err("bad prefix");
    assert_eq!(
        (err.kind(), err.context_value("key")),
        (ErrorKind::Config, Some("key_prefix")),
        "{err}"
    );
    let err = RedisTransport::with_config(bad).await.expect_err("bad prefix");
    assert_eq!(
        (err.kind(), err.context_value("key")),
        (ErrorKind::Config, Some("key_prefix")),
        "{err}"
    );
    let err = RedisStore::connect("http://127.0.0.1:6379")
        .await
        .expect_err("not a redis URL");
    assert_eq!(
        (err.kind(), err.context_value("key")),
        (ErrorKind::Config, Some("url")),
        "{err}"
    );

    // A good URL with options works.
    let good = RedisConfig::from_url(&format!("{base}?key_prefix={}&ack_timeout=3s", unique("opts")))
        .expect("valid");
    assert_eq!(good.ack_timeout, Duration::from_secs(3));
    let store = RedisStore::with_config(good).await.expect("connect");
    store.put("k", Bytes::from_static(b"v"), None).await.expect("put");
}
