//! The admin listener (`multiagents::admin`): the JSON API, the token
//! check, body limits, `/metrics`, health checks, server-sent events, and
//! the web console rendered by a real headless Chromium.
//!
//! HTTP is spoken over a plain `TcpStream` (HTTP/1.1, `Connection: close`),
//! so what is tested is what goes over the wire.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use multiagents::Runtime;
use multiagents::admin::{AdminServer, serve};
use multiagents::config::AdminSection;
use multiagents::worker::{CallInfo, WorkerSpec, fatal, native};
use multiagents::workflow::{RetryPolicy, StepDef, WorkflowDef};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "test-token-0123456789";

fn cbor(v: &Value) -> Bytes {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("cbor");
    out.into()
}

/// `reserve` adds `{"reserved": true}`; it fails when the input says so,
/// after which `release` undoes nothing but records itself.
async fn runtime() -> Runtime {
    runtime_named("order").await
}

/// The same with the workflow named `name` (a test reading process-wide
/// metrics names its own, as the tests of this binary run at once).
async fn runtime_named(name: &str) -> Runtime {
    let reserve = native(|_c: CallInfo, input: Bytes| async move {
        let ctx: Value = ciborium::from_reader(&input[..]).map_err(|e| fatal(e.to_string()))?;
        if ctx["fail"] == true {
            return Err(fatal("out of stock"));
        }
        Ok(cbor(&json!({"reserved": true})))
    });
    let ship = native(|_c: CallInfo, input: Bytes| async move {
        let ctx: Value = ciborium::from_reader(&input[..]).map_err(|e| fatal(e.to_string()))?;
        if ctx["fail_ship"] == true {
            return Err(fatal("no courier"));
        }
        Ok(cbor(&json!({"shipped": true})))
    });
    let release = native(|_c: CallInfo, _i: Bytes| async move { Ok(cbor(&json!({"released": true}))) });
    Runtime::builder()
        .worker_native("reserve", reserve, WorkerSpec::default())
        .worker_native("ship", ship, WorkerSpec::default())
        .worker_native("release", release, WorkerSpec::default())
        .workflow(
            WorkflowDef::builder(name)
                .step(
                    StepDef::new("reserve", "reserve")
                        .compensate_with("release")
                        .retry(RetryPolicy::none()),
                )
                .step(StepDef::new("ship", "ship").retry(RetryPolicy::none()))
                .build(),
        )
        .build()
        .await
        .expect("runtime")
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    headers: String,
    body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    if method == "POST" || body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    http_with(addr, method, path, &headers, body).await
}

/// A request with exactly these extra headers (plus Host, Connection and
/// Content-Length).
async fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" || body.is_some() {
        req.push_str(&format!("Content-Length: {}\r\n", body.map_or(0, <[u8]>::len)));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    if let Some(b) = body {
        // A body refused early may close the connection before it is sent.
        let _ = s.write_all(b).await;
    }
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers: head.to_string(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

async fn admin(rt: &Runtime, section: AdminSection) -> AdminServer {
    serve(rt.clone(), &section).await.expect("admin listener")
}

/// Submits `body` through the API (no token); the new transaction's id.
async fn submit(addr: SocketAddr, body: &str) -> String {
    let r = http(addr, "POST", "/api/v1/transactions", None, Some(body.as_bytes())).await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.json()["tx"].as_str().expect("tx").to_string()
}

async fn until_final(addr: SocketAddr, tx: &str, token: Option<&str>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http(addr, "GET", &format!("/api/v1/transactions/{tx}"), token, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        if !matches!(v["status"].as_str(), Some("running" | "compensating")) {
            return v;
        }
        assert!(Instant::now() < deadline, "transaction {tx} did not end: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_requests_without_the_right_token_and_keeps_health_open() {
    let rt = runtime().await;
    let server = admin(&rt, AdminSection::on("127.0.0.1:0").with_token(TOKEN)).await;
    let addr = server.local_addr();

    for path in ["/healthz", "/readyz", "/metrics", "/"] {
        assert_eq!(
            http(addr, "GET", path, None, None).await.status,
            200,
            "{path} is open"
        );
    }
    let none = http(addr, "GET", "/api/v1/transactions", None, None).await;
    assert_eq!(none.status, 401, "{}", none.body);
    assert!(
        none.headers
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer")
    );
    assert_eq!(none.json()["error"]["kind"], "unauthorized");
    let wrong = http(
        addr,
        "GET",
        "/api/v1/workers",
        Some("test-token-0123456780"),
        None,
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"]["message"], "wrong admin token");
    let submit = http(
        addr,
        "POST",
        "/api/v1/transactions",
        None,
        Some(br#"{"workflow":"order"}"#),
    )
    .await;
    assert_eq!(submit.status, 401, "a submit without the token starts nothing");
    assert!(rt.list(None, 10).await.expect("list").items.is_empty());
    // No way around the token: other methods, trailing slashes, encodings.
    for (method, path) in [
        ("HEAD", "/api/v1/workers"),
        ("OPTIONS", "/api/v1/workers"),
        ("GET", "/api/v1/workers/"),
        ("GET", "/api/v1/%77orkers"),
        ("GET", "/healthz/../api/v1/workers"),
        ("DELETE", "/api/v1/transactions"),
    ] {
        let r = http(addr, method, path, None, None).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.headers);
    }
    let ok = http(addr, "GET", "/api/v1/workers", Some(TOKEN), None).await;
    assert_eq!(ok.status, 200);
    assert!(!ok.body.contains(TOKEN) && !none.body.contains(TOKEN));
    server.stop().await;

    // `/metrics` behind the token when asked.
    let mut closed = AdminSection::on("127.0.0.1:0").with_token(TOKEN);
    closed.metrics_public = false;
    let server = admin(&rt, closed).await;
    let addr = server.local_addr();
    assert_eq!(http(addr, "GET", "/metrics", None, None).await.status, 401);
    assert_eq!(http(addr, "GET", "/metrics", Some(TOKEN), None).await.status, 200);
    server.stop().await;

    // Beyond loopback without a token: refused before listening.
    let e = serve(rt.clone(), &AdminSection::on("0.0.0.0:0"))
        .await
        .expect_err("no token");
    assert_eq!(e.kind(), multiagents::ErrorKind::Config);
    assert!(e.message().contains("needs a token"), "{e}");
    rt.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_submitted_listed_inspected_and_cancelled_through_the_api() {
    let rt = runtime_named("order-api").await;
    let server = admin(&rt, AdminSection::on("127.0.0.1:0")).await;
    let addr = server.local_addr();

    let ok_tx = submit(addr, r#"{"workflow":"order-api","input":{"id":1}}"#).await;
    let done = until_final(addr, &ok_tx, None).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(
        done["output"],
        json!({"id": 1, "reserved": true, "shipped": true})
    );
    assert_eq!(done["history"].as_array().map(Vec::len), Some(2));

    let bad_tx = submit(addr, r#"{"workflow":"order-api","input":{"fail_ship":true}}"#).await;
    let undone = until_final(addr, &bad_tx, None).await;
    assert_eq!(undone["status"], "compensated", "{undone}");
    let h = http(
        addr,
        "GET",
        &format!("/api/v1/transactions/{bad_tx}/history"),
        None,
        None,
    )
    .await
    .json();
    let steps: Vec<(&str, &str)> = h["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|a| (a["step"].as_str().unwrap_or(""), a["kind"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        steps,
        [
            ("reserve", "forward"),
            ("ship", "forward"),
            ("reserve", "compensate")
        ]
    );

    // Lists, filtered by status.
    let all = http(addr, "GET", "/api/v1/transactions?limit=10", None, None)
        .await
        .json();
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
    let completed = http(addr, "GET", "/api/v1/transactions?status=completed", None, None)
        .await
        .json();
    let ids: Vec<&str> = completed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["tx"].as_str())
        .collect();
    assert_eq!(ids, [ok_tx.as_str()]);
    let paged = http(addr, "GET", "/api/v1/transactions?limit=1", None, None)
        .await
        .json();
    assert_eq!(paged["items"].as_array().map(Vec::len), Some(1));
    assert!(paged["cursor"].is_string(), "a next page: {paged}");

    // Cancel: a finished transaction cannot be cancelled (a typed error).
    let c = http(
        addr,
        "POST",
        &format!("/api/v1/transactions/{ok_tx}/cancel"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (c.status, c.json()["error"]["kind"].as_str()),
        (400, Some("invalid_input")),
        "{}",
        c.body
    );
    assert!(c.body.contains("already finished"), "{}", c.body);

    // Bad input gets typed errors.
    type Case<'a> = (&'a str, &'a str, Option<&'a [u8]>, u16, &'a str);
    let cases: [Case<'_>; 7] = [
        ("GET", "/api/v1/transactions/no-such-tx", None, 404, "not_found"),
        ("GET", "/api/v1/transactions/bad%20id", None, 400, "invalid_input"),
        (
            "GET",
            "/api/v1/transactions?status=done",
            None,
            400,
            "invalid_input",
        ),
        ("GET", "/api/v1/transactions?limit=0", None, 400, "invalid_input"),
        (
            "POST",
            "/api/v1/transactions",
            Some(b"{not json"),
            400,
            "invalid_input",
        ),
        (
            "POST",
            "/api/v1/transactions",
            Some(br#"{"workflow":"nope"}"#),
            404,
            "not_found",
        ),
        ("GET", "/api/v2/nothing", None, 404, "not_found"),
    ];
    for (method, path, body, status, kind) in cases {
        let r = http(addr, method, path, None, body).await;
        assert_eq!(
            (r.status, r.json()["error"]["kind"].as_str()),
            (status, Some(kind)),
            "{method} {path}: {}",
            r.body
        );
    }
    let r = http(
        addr,
        "POST",
        "/api/v1/transactions",
        None,
        Some(br#"{"workflow":"order-api","input":[1]}"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Workers, with their limits; the live window saw both workflows.
    let w = http(addr, "GET", "/api/v1/workers", None, None).await.json();
    let reserve = w["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .find(|x| x["name"] == "reserve")
        .cloned();
    let reserve = reserve.expect("reserve listed");
    assert!(reserve["max_concurrent"].as_u64().unwrap_or(0) >= 1, "{reserve}");
    assert_eq!(reserve["breaker"], "closed");
    assert_eq!(w["workflows"], json!(["order-api"]));
    let s = http(addr, "GET", "/api/v1/stats", None, None).await.json();
    // The window is process-wide (other tests' workflows count too); its
    // counting is unit-tested in src/admin/live.rs.
    assert_eq!(s["live"]["seconds"].as_array().map(Vec::len), Some(60), "{s}");

    // Prometheus text with this process's counters.
    let m = http(addr, "GET", "/metrics", None, None).await;
    assert!(m.headers.contains("text/plain"), "{}", m.headers);
    for needle in [
        "multiagents_workflows_finished_total{workflow=\"order-api\",status=\"completed\"} 1",
        "multiagents_workflow_duration_seconds_bucket",
        "multiagents_worker_max_concurrent{worker=\"reserve\"}",
    ] {
        assert!(m.body.contains(needle), "{needle} missing from:\n{}", m.body);
    }
    assert!(!m.body.contains(&ok_tx), "no transaction id in metric labels");
    server.stop().await;
    rt.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_traceparent_header_puts_the_transaction_in_its_trace() {
    let rt = runtime_named("order-trace").await;
    let server = admin(&rt, AdminSection::on("127.0.0.1:0")).await;
    let addr = server.local_addr();
    let plain = submit(addr, r#"{"workflow":"order-trace","input":{"id":1}}"#).await;
    let done = until_final(addr, &plain, None).await;
    let own_trace = done["trace_id"].as_str().expect("a trace of its own").to_string();
    assert_eq!(own_trace.len(), 32, "{done}");

    // A caller's W3C traceparent makes the transaction part of its trace;
    // one that does not parse is ignored (a new trace), as W3C says.
    for (traceparent, joined) in [
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", true),
        ("00-not-a-trace-01", false),
    ] {
        let body = br#"{"workflow":"order-trace","input":{"id":2}}"#;
        let headers = [("Content-Type", "application/json"), ("traceparent", traceparent)];
        let r = http_with(addr, "POST", "/api/v1/transactions", &headers, Some(body)).await;
        assert_eq!(r.status, 202, "{}", r.body);
        let tx = r.json()["tx"].as_str().expect("tx").to_string();
        let traced = until_final(addr, &tx, None).await;
        assert_eq!(traced["status"], "completed");
        let trace = traced["trace_id"].as_str().expect("trace id");
        assert_eq!(
            trace == "0af7651916cd43dd8448eb211c80319c",
            joined,
            "{traceparent}: {trace}"
        );
        assert_ne!(trace, own_trace);
    }

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autoscaling_advice_is_served_and_exported() {
    let rt = runtime_named("order-advice").await;
    let server = admin(&rt, AdminSection::on("127.0.0.1:0").with_token(TOKEN)).await;
    let addr = server.local_addr();
    assert_eq!(http(addr, "GET", "/api/v1/advice", None, None).await.status, 401);
    let deadline = Instant::now() + Duration::from_secs(10);
    let advice = loop {
        let r = http(addr, "GET", "/api/v1/advice", Some(TOKEN), None).await;
        if r.status == 200 {
            break r.json();
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(Instant::now() < deadline, "no advice within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(advice["instances"].as_u64() >= Some(1), "{advice}");
    assert!(advice["advice"]["instances"].as_u64() >= Some(1), "{advice}");
    // The sample's CPU and throughput are this test process's, which the
    // other tests running beside it load: only when it is quiet must the
    // advice hold at the instances there are.
    let quiet = advice["cpu"].as_f64() < Some(0.5) && advice["throughput"].as_f64() == Some(0.0);
    if quiet {
        assert_eq!(advice["advice"]["instances"], advice["instances"], "{advice}");
    }
    assert!(
        advice["advice"]["reason"]
            .as_str()
            .expect("reason")
            .contains("demand"),
        "{advice}"
    );
    let metrics = http(addr, "GET", "/metrics", None, None).await.body;
    assert!(metrics.contains("multiagents_advised_instances"), "{metrics}");
    assert!(metrics.contains("multiagents_instances"), "{metrics}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_with_413() {
    let rt = runtime().await;
    let mut section = AdminSection::on("127.0.0.1:0");
    section.max_body = 1024;
    let server = admin(&rt, section).await;
    let big = format!(
        r#"{{"workflow":"order","input":{{"pad":"{}"}}}}"#,
        "x".repeat(4096)
    );
    let r = http(
        server.local_addr(),
        "POST",
        "/api/v1/transactions",
        None,
        Some(big.as_bytes()),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error"]["kind"], "too_large");
    assert!(
        rt.list(None, 10).await.expect("list").items.is_empty(),
        "nothing started"
    );
    server.stop().await;
    rt.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_arrive_as_server_sent_events() {
    let rt = runtime().await;
    let server = admin(&rt, AdminSection::on("127.0.0.1:0").with_token(TOKEN)).await;
    let addr = server.local_addr();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    // Let the subscription start before the workflow does.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tx = rt.execute("order", json!({})).await.expect("execute");
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !seen.contains("event: workflow.completed") {
        assert!(Instant::now() < deadline, "no completion event in:\n{seen}");
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            assert!(n > 0, "the stream ended:\n{seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(
        seen.contains("event: workflow.started") && seen.contains(tx.as_str()),
        "{seen}"
    );
    // Stopping ends the open stream at once (not after the 5 s grace).
    let stopped = Instant::now();
    server.stop().await;
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "stop waited {:?}",
        stopped.elapsed()
    );
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest)).await;
    assert!(
        ended.is_ok(),
        "the event stream did not end when the listener stopped"
    );
    rt.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_web_pages_cannot_drive_a_tokenless_api() {
    let rt = runtime().await;
    let server = admin(&rt, AdminSection::on("127.0.0.1:0")).await;
    let addr = server.local_addr();
    let json = ("Content-Type", "application/json");
    let body: &[u8] = br#"{"workflow":"order"}"#;
    // A form post from another page (text/plain needs no preflight).
    let r = http_with(
        addr,
        "POST",
        "/api/v1/transactions",
        &[("Content-Type", "text/plain")],
        Some(body),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["kind"].as_str()),
        (415, Some("invalid_input")),
        "{}",
        r.body
    );
    // A script of another origin.
    let r = http_with(
        addr,
        "POST",
        "/api/v1/transactions",
        &[json, ("Origin", "https://evil.example")],
        Some(body),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = http_with(
        addr,
        "GET",
        "/api/v1/transactions",
        &[("Origin", "http://evil.example")],
        None,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        rt.list(None, 10).await.expect("list").items.is_empty(),
        "nothing started"
    );
    // The console's own origin is fine.
    let own = format!("http://{addr}");
    let r = http_with(
        addr,
        "POST",
        "/api/v1/transactions",
        &[json, ("Origin", &own)],
        Some(body),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    // A rebound DNS name reaches 127.0.0.1 with another Host: refused.
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = "GET /api/v1/transactions HTTP/1.1\r\nHost: evil.example:9090\r\nConnection: close\r\n\r\n";
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw).await;
    assert!(raw.starts_with("HTTP/1.1 403"), "{raw}");
    server.stop().await;
    rt.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_through_every_transaction_and_filters_across_pages() {
    let rt = runtime().await;
    let mut failed = std::collections::BTreeSet::new();
    for i in 0..150 {
        let input = if i % 10 == 3 {
            json!({"fail": true})
        } else {
            json!({})
        };
        let tx = rt.execute("order", input).await.expect("execute");
        if i % 10 == 3 {
            failed.insert(tx.to_string());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while rt
        .list(None, 200)
        .await
        .expect("list")
        .items
        .iter()
        .any(|s| !s.status.is_final())
    {
        assert!(Instant::now() < deadline, "not all finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server = admin(&rt, AdminSection::on("127.0.0.1:0")).await;
    let addr = server.local_addr();
    let follow = |first: &'static str| async move {
        let (mut seen, mut pages, mut path) = (Vec::new(), 0, first.to_string());
        loop {
            let page = http(addr, "GET", &path, None, None).await.json();
            pages += 1;
            for item in page["items"].as_array().expect("items") {
                seen.push(item["tx"].as_str().expect("tx").to_string());
            }
            match page["cursor"].as_str() {
                Some(c) => path = format!("{first}&cursor={c}"),
                None => return (seen, pages),
            }
        }
    };
    let (all, pages) = follow("/api/v1/transactions?limit=40").await;
    assert_eq!(all.len(), 150, "every transaction once");
    assert!(
        (4..=5).contains(&pages),
        "pages of 40 (a last one may be empty): {pages}"
    );
    assert_eq!(all.iter().collect::<std::collections::BTreeSet<_>>().len(), 150);
    let (bad, pages) = follow("/api/v1/transactions?status=failed&limit=1").await;
    assert!(pages >= 2, "the filter crossed store pages ({pages})");
    assert_eq!(bad.into_iter().collect::<std::collections::BTreeSet<_>>(), failed);
    let page = http(
        addr,
        "GET",
        "/api/v1/transactions?status=failed&limit=1",
        None,
        None,
    )
    .await
    .json();
    assert_eq!(
        page["scanned"], 100,
        "a filtered list reads store pages of 100: {page}"
    );
    server.stop().await;
    rt.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}

/// Chromium: installed by `scripts/test.sh`; without it the test skips
/// visibly, unless `MULTIAGENTS_REQUIRE_BACKENDS=1` (CI), where it fails.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH")?
                .to_str()?
                .split(':')
                .map(|dir| PathBuf::from(dir).join(name))
                .find(|p| p.is_file())
        });
    if found.is_none() {
        assert!(
            std::env::var("MULTIAGENTS_REQUIRE_BACKENDS").as_deref() != Ok("1"),
            "chromium is required (MULTIAGENTS_REQUIRE_BACKENDS=1): apt-get install chromium, or run scripts/test.sh as root"
        );
        eprintln!("SKIPPED: no chromium on PATH (scripts/test.sh installs it)");
    }
    found
}

async fn browser(bin: &PathBuf, args: &[String]) -> String {
    let out = tokio::process::Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .args([
            "--virtual-time-budget=4000",
            "--run-all-compositor-stages-before-draw",
        ])
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("chromium hung")
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_renders_transactions_and_workers_in_a_real_browser() {
    let Some(bin) = chromium() else { return };
    let rt = runtime().await;
    let ok = rt
        .run("order", json!({"id": 7}), Duration::from_secs(10))
        .await
        .expect("run");
    let failed = rt
        .run("order", json!({"fail": true}), Duration::from_secs(10))
        .await
        .expect("run");
    let server = admin(&rt, AdminSection::on("127.0.0.1:0")).await;
    let url = format!("http://{}/", server.local_addr());

    let dom = browser(&bin, &["--dump-dom".into(), url.clone()]).await;
    for needle in [
        ok.tx.as_str(),
        failed.tx.as_str(),
        "status completed",
        "status failed",
        "<option>order</option>",
    ] {
        assert!(
            dom.contains(needle),
            "the rendered console lacks {needle:?}:\n{dom}"
        );
    }
    assert!(!dom.contains("loading…"), "the list was rendered by the script");

    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let shot = artifacts.join("console.png");
    let _ = std::fs::remove_file(&shot);
    browser(
        &bin,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,800".into(),
            url,
        ],
    )
    .await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot ({} bytes)",
        png.len()
    );
    server.stop().await;
    rt.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}

/// Metric names in `text`: every `multiagents_…` word, with Prometheus's
/// histogram suffixes taken off.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("multiagents_") {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + word.len()..];
        let name = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| word.strip_suffix(s).filter(|n| n.ends_with("_seconds")))
            .unwrap_or(&word);
        out.insert(name.to_string());
    }
    out
}

/// Names the code records: the first string literal of every
/// `metrics::counter!` / `gauge!` / `histogram!` under `dir`.
fn recorded(dir: &std::path::Path, out: &mut std::collections::BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            recorded(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source");
            for macro_ in [
                "metrics::counter!(\"",
                "metrics::gauge!(\"",
                "metrics::histogram!(\"",
            ] {
                for (at, _) in text.match_indices(macro_) {
                    let name: String = text[at + macro_.len()..]
                        .chars()
                        .take_while(|c| *c != '"')
                        .collect();
                    out.insert(name);
                }
            }
        }
    }
}

#[test]
fn the_metrics_doc_and_the_dashboard_name_exactly_what_the_code_records() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut code = std::collections::BTreeSet::new();
    recorded(&root.join("core/src"), &mut code);
    recorded(&root.join("src"), &mut code);
    for backend in ["redis", "nats", "kafka"] {
        recorded(&root.join("backends").join(backend).join("src"), &mut code);
    }
    assert!(code.len() >= 10, "found the recorded metrics: {code:?}");
    let doc = metric_names(&std::fs::read_to_string(root.join("docs/metrics.md")).expect("docs/metrics.md"));
    assert_eq!(
        code, doc,
        "docs/metrics.md must list every recorded metric, and no other"
    );
    let dashboard = std::fs::read_to_string(root.join("docs/grafana-dashboard.json")).expect("dashboard");
    let parsed: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
    let used = metric_names(&dashboard);
    let unknown: Vec<&String> = used.difference(&code).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics nobody records: {unknown:?}"
    );
}
