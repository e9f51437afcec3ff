//! The web console at `/`: one HTML page and one script, compiled into the
//! binary (no JavaScript toolchain in the build). The script reads the JSON
//! API of [`super::api`] with the token the user types (kept in the tab's
//! `sessionStorage`, sent only as `Authorization: Bearer`).

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("assets/console.html");
const SCRIPT: &str = include_str!("assets/console.js");

pub(crate) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}

pub(crate) async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
}
