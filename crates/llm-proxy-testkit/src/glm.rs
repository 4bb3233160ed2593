//! ZhipuAI's open platform API v4 (GLM): `POST /api/paas/v4/chat/completions` and
//! `/api/paas/v4/embeddings`, OpenAI-shaped, authenticated by a JWT signed from the configured
//! `id.secret` key ([`crate::jwt`]). Errors are GLM's `{"error":{"code":"1002","message":…}}`, the
//! code a string of GLM's business error codes.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::{self, Protocol};
use crate::jwt::{self, JwtError};
use crate::openai::{self, Dialect};
use crate::{MockState, Recorded};

/// GLM's business error codes the mock uses.
pub(crate) const AUTH_FAILED: &str = "1000";
const NO_AUTHORIZATION: &str = "1001";
const TOKEN_INVALID: &str = "1002";
const TOKEN_EXPIRED: &str = "1003";
const TOKEN_VERIFY_FAILED: &str = "1004";
const BAD_PARAMETERS: &str = "1210";
const MODEL_NOT_FOUND: &str = "1211";
const PARAMETER_INVALID: &str = "1214";
const PROMPT_TOO_LONG: &str = "1261";
const RATE_LIMITED: &str = "1302";
const INTERNAL: &str = "500";

/// The message GLM sends with `code`.
pub(crate) fn message(code: &str) -> &'static str {
    match code {
        AUTH_FAILED => "身份验证失败。",
        NO_AUTHORIZATION => "Header中未收到Authorization参数，无法进行身份验证。",
        TOKEN_INVALID => "Authorization Token非法，请确认Authorization Token正确传递。",
        TOKEN_EXPIRED => "Authorization Token已过期，请重新生成/获取。",
        TOKEN_VERIFY_FAILED => "通过Authorization Token的验证失败。",
        BAD_PARAMETERS => "API 调用参数有误，请检查文档。",
        MODEL_NOT_FOUND => "模型不存在，请检查模型代码。",
        RATE_LIMITED => "您当前使用该API的并发数过高，请降低并发，或联系客服增加限额。",
        INTERNAL => "内部错误",
        _ => "API 调用错误",
    }
}

fn code_for(status: u16) -> &'static str {
    match status {
        400 => BAD_PARAMETERS,
        401 => AUTH_FAILED,
        404 => MODEL_NOT_FOUND,
        429 => RATE_LIMITED,
        s if s >= 500 => INTERNAL,
        _ => "1200",
    }
}

fn error_with_code(status: u16, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    faults::with_retry_after(status, (faults::status_code(status), Json(body)).into_response())
}

pub(crate) fn error(status: u16, message: &str) -> Response {
    error_with_code(status, code_for(status), message)
}

/// GLM's answer to a prompt beyond the model's context window.
pub(crate) fn prompt_too_long() -> Response {
    error_with_code(400, PROMPT_TOO_LONG, "Prompt exceeds max length")
}

fn refuse(code: &str, detail: &str) -> Response {
    let text = if detail.is_empty() { message(code).to_string() } else { format!("{} ({detail})", message(code)) };
    error_with_code(401, code, &text)
}

/// The bearer JWT: signed with the configured key's secret, for its id, not expired.
fn authenticate(state: &MockState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()).filter(|a| !a.is_empty()) else {
        return Err(refuse(NO_AUTHORIZATION, ""));
    };
    let token = auth.strip_prefix("Bearer ").unwrap_or(auth).trim();
    state.saw_glm_token(token);
    match jwt::verify(token, &state.config().glm_key, jwt::now_ms()) {
        Ok(_) => Ok(()),
        Err(JwtError::Malformed(why)) => Err(refuse(TOKEN_INVALID, &why)),
        Err(JwtError::BadSignature) => Err(refuse(TOKEN_VERIFY_FAILED, "signature")),
        Err(JwtError::UnknownKey) => Err(refuse(AUTH_FAILED, "api_key")),
        Err(JwtError::Expired) => Err(refuse(TOKEN_EXPIRED, "")),
    }
}

/// Records, authenticates, parses and applies the faults of the model.
async fn accept(state: &MockState, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(Value, String), Response> {
    let parsed = serde_json::from_slice::<Value>(body);
    if let Ok(body) = &parsed {
        state.record(Recorded::new(uri.path(), headers, uri.query(), body.clone()));
    }
    authenticate(state, headers)?;
    let body = match parsed {
        Ok(body) if body.is_object() => body,
        _ => return Err(error_with_code(400, BAD_PARAMETERS, message(BAD_PARAMETERS))),
    };
    let Some(model) = body["model"].as_str().map(String::from) else {
        return Err(error_with_code(400, "1213", "未正常接收到model参数。"));
    };
    faults::apply(state, Protocol::Glm, &model, headers).await?;
    Ok((body, model))
}

pub(crate) async fn chat(State(state): State<Arc<MockState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let (body, model) = match accept(&state, &uri, &headers, &body).await {
        Ok(accepted) => accepted,
        Err(resp) => return resp,
    };
    if body["messages"].as_array().is_none_or(|m| m.is_empty()) {
        return error_with_code(400, PARAMETER_INVALID, "messages 参数非法。请检查文档。");
    }
    openai::answer(state, &body, model, Dialect::Glm)
}

pub(crate) async fn embeddings(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match accept(&state, &uri, &headers, &body).await {
        Ok((body, model)) => openai::embed(&body, &model),
        Err(resp) => resp,
    }
}
