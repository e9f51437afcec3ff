//! The JSON API under `/api/v1` (and the health checks): submit, status,
//! history, list, cancel, live events (server-sent events), workers and the
//! live figures. Every error answers through [`super::reply`].

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use multiagents_core::orchestrator::{SagaSnapshot, TransactionId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Admin;
use super::reply::{ApiError, ApiResult};

/// Most transactions one list request returns.
const MAX_LIMIT: usize = 200;
/// Most transactions a status-filtered list reads for one request.
const MAX_SCANNED: usize = 5_000;
/// The store page size of a status-filtered list (at least).
const FILTER_PAGE: usize = 100;

pub(crate) async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready: not shedding load, and the store answers (within 2 s).
pub(crate) async fn readyz(State(admin): State<Admin>) -> impl IntoResponse {
    if let Some(guard) = admin.runtime.memory_guard().filter(|g| g.shedding()) {
        let ratio = guard.last().map_or(0.0, |r| r.ratio());
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "not ready",
                "reason": format!("shedding load: memory at {:.0}% of its limit", ratio * 100.0),
            })),
        );
    }
    let probe = format!("{}/admin/ready", admin.runtime.orchestrator().config().prefix);
    let answer = tokio::time::timeout(Duration::from_secs(2), admin.runtime.store().get(&probe)).await;
    match answer {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        // The reason is the error's kind only: this endpoint is open, and a
        // backend's message can name internal hosts (it is in the log).
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not ready", "reason": format!("store: {}", e.kind().as_str())})),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": "store: no answer within 2s"})),
        ),
    }
}

#[derive(Deserialize)]
pub(crate) struct Submit {
    workflow: String,
    #[serde(default = "empty_object")]
    input: Value,
}

fn empty_object() -> Value {
    json!({})
}

pub(crate) async fn submit(
    State(admin): State<Admin>,
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let body = body.map_err(|r| {
        let kind = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "invalid_input"
        };
        ApiError::new(
            r.status(),
            kind,
            format!("cannot read the body: {}", r.body_text()),
        )
    })?;
    let submit: Submit = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("the body must be JSON like {{\"workflow\": \"order\", \"input\": {{}}}}: {e}"),
        )
    })?;
    if !submit.input.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "input must be a JSON object",
        ));
    }
    // A caller's W3C `traceparent` makes the transaction part of its trace;
    // one that does not parse is ignored, as the W3C spec says.
    let parent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let tx = admin
        .runtime
        .execute_in_trace(&submit.workflow, submit.input, parent)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"tx": tx}))))
}

/// The autoscaling advisor's last advice and the sample behind it.
pub(crate) async fn advice(State(admin): State<Admin>) -> ApiResult<impl IntoResponse> {
    let last = admin.advice.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match last {
        Some(sampled) => Ok(Json(json!(sampled))),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no sample yet: the advisor samples every 10 s",
        )),
    }
}

/// `GET /api/v1/profile`: where this instance's time went (the
/// bottleneck profiler; empty, saying so, unless `[profile] enabled`).
pub(crate) async fn profile(State(admin): State<Admin>) -> ApiResult<impl IntoResponse> {
    Ok(Json(admin.runtime.profile()))
}

/// `POST /api/v1/profile/reset`: forgets the timings; a new window starts.
pub(crate) async fn profile_reset(State(admin): State<Admin>) -> ApiResult<impl IntoResponse> {
    admin.runtime.profiler().reset();
    Ok(StatusCode::NO_CONTENT)
}

fn tx_id(id: &str) -> ApiResult<TransactionId> {
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "not a transaction id",
        ));
    }
    Ok(TransactionId::from(id))
}

/// A snapshot as the API shows it: its fields plus `status_label`
/// (`pending` for a transaction whose first step has not finished).
fn shown(s: &SagaSnapshot) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("status_label".into(), json!(s.status_label()));
        map.insert("elapsed_ms".into(), json!(s.elapsed().as_millis() as u64));
    }
    v
}

pub(crate) async fn status(State(admin): State<Admin>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(shown(&admin.runtime.status(&tx_id(&id)?).await?)))
}

pub(crate) async fn history(State(admin): State<Admin>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let history = admin.runtime.history(&tx_id(&id)?).await?;
    Ok(Json(json!({"history": history})))
}

pub(crate) async fn cancel(
    State(admin): State<Admin>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    admin.runtime.cancel(&tx_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"cancel": "requested"}))))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

const STATUSES: &[&str] = &[
    "pending",
    "running",
    "completed",
    "failed",
    "compensating",
    "compensated",
    "cancelled",
    "compensation_failed",
];

/// A page of transactions, in the store's order (oldest ids first).
///
/// With `status`, store pages of `max(limit, 100)` are read until `limit`
/// matches are found, the end is reached, or [`MAX_SCANNED`] transactions
/// were read; every match of a page read is returned (the store's cursor
/// cannot resume inside a page), so such a page may hold more than
/// `limit` items. `scanned` says how many were read; `cursor` continues
/// after them.
pub(crate) async fn list(
    State(admin): State<Admin>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", r.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let wanted = q.status.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = wanted
        && !STATUSES.contains(&s)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("unknown status {s:?} (one of {})", STATUSES.join(", ")),
        ));
    }
    let mut items = Vec::new();
    let mut scanned = 0;
    let mut cursor = q.cursor.filter(|c| !c.is_empty());
    // Filtered, read pages of at least FILTER_PAGE (not `limit` one by one).
    let page_size = if wanted.is_some() {
        limit.max(FILTER_PAGE)
    } else {
        limit
    };
    loop {
        let page = admin.runtime.list(cursor.as_deref(), page_size).await?;
        scanned += page.items.len();
        items.extend(
            page.items
                .iter()
                .filter(|s| wanted.is_none_or(|w| s.status_label() == w))
                .map(shown),
        );
        cursor = page.cursor;
        if wanted.is_none() || items.len() >= limit || cursor.is_none() || scanned >= MAX_SCANNED {
            break;
        }
    }
    Ok(Json(
        json!({"items": items, "cursor": cursor, "scanned": scanned}),
    ))
}

pub(crate) async fn workers(State(admin): State<Admin>) -> Json<Value> {
    let rt = &admin.runtime;
    let workers: Vec<Value> = rt
        .workers()
        .into_iter()
        .filter_map(|name| {
            let s = rt.host().stats(&name)?;
            Some(json!({
                "name": name,
                "kind": s.kind,
                "max_concurrent": s.max_concurrent,
                "limit": s.limit,
                "adaptive": s.adaptive,
                "in_flight": s.in_flight,
                "queued": s.queued,
                "high_water": s.high_water,
                "breaker": format!("{:?}", s.breaker).to_lowercase(),
                "calls": {
                    "executions": s.calls.executions,
                    "successes": s.calls.successes,
                    "failures": s.calls.failures,
                    "rejected": s.calls.rejected,
                    "p50_ms": s.calls.p50.as_secs_f64() * 1000.0,
                    "p99_ms": s.calls.p99.as_secs_f64() * 1000.0,
                },
            }))
        })
        .collect();
    Json(json!({"workers": workers, "workflows": rt.workflows()}))
}

/// The live window (throughput and latency of the last minute).
pub(crate) async fn stats(State(admin): State<Admin>) -> Json<Value> {
    let live = admin.exporter.as_ref().map(|e| e.live.stats());
    Json(json!({
        "live": live,
        "memory": {"resident_bytes": super::metrics::resident_bytes()},
        "cache": admin.runtime.cache_stats().map(|c| json!({"hits": c.hits, "misses": c.misses})),
    }))
}

/// Live lifecycle events as server-sent events (at most once: a slow
/// reader or a restart loses some; status and history are the record).
pub(crate) async fn events(
    State(admin): State<Admin>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let events = admin.runtime.events().await?;
    let mut closing = admin.closing.clone();
    let closed = async move {
        let _ = closing.wait_for(|closing| *closing).await;
    };
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        loop {
            match events.next().await {
                None => return None,
                Some(Ok(e)) => {
                    let data = serde_json::to_string(&e).unwrap_or_default();
                    let mut sse = SseEvent::default().data(data);
                    // Event names come from the shared events topic: only
                    // plain names become SSE event names (a line break
                    // would break the stream).
                    if !e.name.is_empty()
                        && e.name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                    {
                        sse = sse.event(e.name.as_str());
                    }
                    return Some((Ok(sse), events));
                }
                Some(Err(e)) => tracing::debug!(error = %e, "an event could not be read"),
            }
        }
    });
    let stream = futures_util::StreamExt::take_until(stream, Box::pin(closed));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
