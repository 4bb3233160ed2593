//! `/api/routes`: the routing table over HTTP. Routes from the config file are shown read-only
//! (409 on a write: edit the file); routes stored in the database are created, replaced and
//! deleted here by admins, validated against the providers as the file's are. A change is in this
//! instance's routing table before the answer goes out, and in the others' within their
//! one-second poll (`crate::route_sync`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use llm_proxy_core::config::RouteConfig;
use llm_proxy_core::store::{StoreError, StoredRoute};
use llm_proxy_core::user::Role;
use serde_json::{Value, json};

use crate::admin_auth::AdminCaller;
use crate::app::{AppState, Shared};
use crate::audit;
use crate::error::ApiError;
use crate::routes::admin_json::{PageParams, page, read_json};

fn unavailable(e: &StoreError) -> ApiError {
    tracing::warn!(error = %e, "reading or writing stored routes failed");
    ApiError::service_unavailable("Routes cannot be read or written right now.")
}

fn route_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("No route named `{}`.", llm_proxy_core::request_log::clean_text(name, 128)))
}

fn from_file(name: &str) -> ApiError {
    ApiError::conflict(format!(
        "The route `{}` is defined in the config file, which wins over the database: edit the file.",
        llm_proxy_core::request_log::clean_text(name, 128)
    ))
}

fn view(config: &RouteConfig, source: &str, updated_at: Option<i64>) -> Value {
    json!({"name": config.name, "source": source, "updated_at": updated_at, "config": config})
}

/// Every route: the file's, then the stored ones not shadowed by a file route, by name.
async fn all(state: &Shared) -> Result<Vec<Value>, ApiError> {
    let file = &state.route_inputs.file_routes;
    let stored = state.store.list_routes().await.map_err(|e| unavailable(&e))?;
    let mut out: Vec<Value> = file.iter().map(|r| view(r, "file", None)).collect();
    out.extend(
        stored
            .iter()
            .filter(|s| !file.iter().any(|f| f.name == s.config.name))
            .map(|s| view(&s.config, "database", Some(s.updated_at.to_i64()))),
    );
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(out)
}

/// `GET /api/routes?cursor=&limit=` (admins and viewers).
pub async fn list(
    State(state): State<AppState>,
    parts: Parts,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        state.admin_caller(&parts).await?.require(Role::Viewer)?;
        let Ok(Query(params)) = params else {
            return Err(ApiError::bad_request("Query parameters are `cursor` and `limit`."));
        };
        page(all(&state).await?, |r| r["name"].as_str().unwrap_or_default(), &params)
    }
    .await;
    match result {
        Ok((data, next)) => Json(json!({"data": data, "next": next})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/routes/{name}` (admins and viewers).
pub async fn get(State(state): State<AppState>, parts: Parts, Path(name): Path<String>) -> Response {
    let result = async {
        state.admin_caller(&parts).await?.require(Role::Viewer)?;
        all(&state).await?.into_iter().find(|r| r["name"] == name.as_str()).ok_or_else(|| route_not_found(&name))
    }
    .await;
    match result {
        Ok(r) => Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn stored(state: &Shared, name: &str) -> Result<Option<StoredRoute>, ApiError> {
    let routes = state.store.list_routes().await.map_err(|e| unavailable(&e))?;
    Ok(routes.into_iter().find(|r| r.config.name == name))
}

/// The route as the body gives it, checked against the providers (400 listing every problem).
fn validated(state: &Shared, route: RouteConfig) -> Result<RouteConfig, ApiError> {
    let live = state.live.load();
    let problems = route.validate("route", &live.catalog);
    if problems.is_empty() {
        return Ok(route);
    }
    let reasons: Vec<String> = problems.iter().map(ToString::to_string).collect();
    Err(ApiError::bad_request(format!("The route is invalid: {}.", reasons.join("; "))))
}

/// Rebuilds this instance's routing table from the stored routes, now.
async fn reload(state: &Shared) -> Result<(), ApiError> {
    let stored: Vec<RouteConfig> =
        state.store.list_routes().await.map_err(|e| unavailable(&e))?.into_iter().map(|r| r.config).collect();
    let live = state.live.load().with_routes(&state.route_inputs, &stored);
    state.live.store(Arc::new(live));
    Ok(())
}

async fn admin(state: &Shared, parts: &Parts) -> Result<AdminCaller, ApiError> {
    let caller = state.admin_caller(parts).await?;
    caller.require(Role::Admin)?;
    Ok(caller)
}

/// `POST /api/routes` (admins): a new stored route → 201.
pub async fn create(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let caller = admin(&state, &parts).await?;
        let route = validated(&state, read_json::<RouteConfig>(&parts.headers, body).await?)?;
        if state.route_inputs.file_routes.iter().any(|f| f.name == route.name) {
            return Err(from_file(&route.name));
        }
        if stored(&state, &route.name).await?.is_some() {
            return Err(ApiError::conflict(format!("A route named `{}` exists; PUT replaces it.", route.name)));
        }
        let put = state.store.put_route(&route).await.map_err(|e| unavailable(&e))?;
        reload(&state).await?;
        let after = view(&put.config, "database", Some(put.updated_at.to_i64()));
        audit::record_change(&state, &caller, &parts, "route.create", Some(&route.name), None, Some(&after)).await;
        Ok(after)
    }
    .await;
    match result {
        Ok(r) => (StatusCode::CREATED, Json(r)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PUT /api/routes/{name}` (admins): replaces a stored route.
pub async fn replace(State(state): State<AppState>, Path(name): Path<String>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let caller = admin(&state, &parts).await?;
        if state.route_inputs.file_routes.iter().any(|f| f.name == name) {
            return Err(from_file(&name));
        }
        let Some(before) = stored(&state, &name).await? else { return Err(route_not_found(&name)) };
        let route = read_json::<RouteConfig>(&parts.headers, body).await?;
        if route.name != name {
            return Err(ApiError::bad_request("The body's `name` must be the route's; a route is not renamed.")
                .with_param(Some("name".into())));
        }
        let route = validated(&state, route)?;
        let put = state.store.put_route(&route).await.map_err(|e| unavailable(&e))?;
        reload(&state).await?;
        let before = view(&before.config, "database", Some(before.updated_at.to_i64()));
        let after = view(&put.config, "database", Some(put.updated_at.to_i64()));
        audit::record_change(&state, &caller, &parts, "route.update", Some(&name), Some(&before), Some(&after)).await;
        Ok(after)
    }
    .await;
    match result {
        Ok(r) => Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /api/routes/{name}` (admins): removes a stored route → 204.
pub async fn delete(State(state): State<AppState>, parts: Parts, Path(name): Path<String>) -> Response {
    let result = async {
        let caller = admin(&state, &parts).await?;
        if state.route_inputs.file_routes.iter().any(|f| f.name == name) {
            return Err(from_file(&name));
        }
        let Some(before) = stored(&state, &name).await? else { return Err(route_not_found(&name)) };
        match state.store.delete_route(&name).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(route_not_found(&name)),
            Err(e) => return Err(unavailable(&e)),
        }
        reload(&state).await?;
        let before = view(&before.config, "database", Some(before.updated_at.to_i64()));
        audit::record_change(&state, &caller, &parts, "route.delete", Some(&name), Some(&before), None).await;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
