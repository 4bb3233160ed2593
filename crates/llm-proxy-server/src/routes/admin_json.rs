//! What the admin API's handlers share: reading a JSON body (400 naming the field, 413 past a
//! small limit) and paging a list by cursor as `/api/logs` does (`{"data": [...], "next": cursor}`).

use axum::body::Body;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::body::read_limited;
use crate::error::ApiError;

/// Admin request bodies are small objects.
const MAX_ADMIN_BODY: usize = 64 * 1024;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Reads a JSON body into `T` (which should refuse unknown fields: nothing a client adds can
/// set what it may not).
pub async fn read_json<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, ApiError> {
    let bytes = read_limited(headers, body, MAX_ADMIN_BODY).await?;
    llm_proxy_protocol::json::decode(&bytes).map_err(|e| ApiError::bad_request(e.to_string()).with_param(e.param))
}

#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// The page of `items` (in their order) after the one whose id is `cursor`, and the cursor of
/// the next page when there is one. A cursor that names nothing is a 400.
pub fn page<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> &str,
    params: &PageParams,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let start = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => match items.iter().position(|i| id(i) == c) {
            Some(at) => at + 1,
            None => return Err(ApiError::bad_request("Invalid `cursor`.").with_param(Some("cursor".into()))),
        },
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let next = (start + page.len() < total).then(|| page.last().map(|i| id(i).to_string())).flatten();
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_one_another_without_gaps() {
        let items: Vec<String> = (0..5).map(|i| format!("id{i}")).collect();
        let params = |cursor: Option<&str>| PageParams { cursor: cursor.map(String::from), limit: Some(2) };
        let (first, next) = page(items.clone(), String::as_str, &params(None)).unwrap();
        assert_eq!((first, next.as_deref()), (vec!["id0".to_string(), "id1".into()], Some("id1")));
        let (second, next) = page(items.clone(), String::as_str, &params(Some("id1"))).unwrap();
        assert_eq!((second.len(), next.as_deref()), (2, Some("id3")));
        let (last, next) = page(items.clone(), String::as_str, &params(Some("id3"))).unwrap();
        assert_eq!((last, next), (vec!["id4".to_string()], None));
        assert!(page(items, String::as_str, &params(Some("nope"))).is_err());
    }
}
