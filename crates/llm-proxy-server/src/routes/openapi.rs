//! `GET /api/openapi.json`: the admin API's OpenAPI 3.1 document, embedded at compile time. The
//! authorization-matrix test keeps it and the routes `app.rs` declares in step.

use axum::http::header;
use axum::response::{IntoResponse, Response};

pub const DOCUMENT: &str = include_str!("../openapi.json");

pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}
