//! `GET /api/stats`: requests, errors, tokens and cost over a time range, per key, user, model or
//! provider. Admins and viewers read everyone's; a member its own keys' only.
//!
//! It reads the hourly aggregates the store keeps as it writes the log, never the log itself, so
//! its cost grows with the number of hours and groups, not with traffic. Hours are the grain: the
//! range asked for is widened to whole UTC hours, and the answer says which ones it covers.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate};
use llm_proxy_core::UnixMillis;
use llm_proxy_core::store::{StatsGroup, StatsQuery, StatsRow};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;

const HOUR_MS: i64 = 3_600_000;
/// The range when the caller names no `from`: the last day, the current hour included.
const DEFAULT_RANGE_MS: i64 = 24 * HOUR_MS;

const TIME_FORMATS: &str =
    "milliseconds since the Unix epoch, an RFC 3339 time (2025-01-31T12:00:00Z) or a date (2025-01-31, UTC)";

#[derive(Debug, Deserialize)]
pub struct StatsParams {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
    key_id: Option<String>,
    user: Option<String>,
}

pub async fn stats(
    State(state): State<AppState>,
    parts: Parts,
    params: Result<Query<StatsParams>, QueryRejection>,
) -> Response {
    let caller = match state.admin_caller(&parts).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Ok(Query(params)) = params else {
        return ApiError::bad_request("Query parameters are `from`, `to`, `group_by`, `key_id` and `user`.")
            .into_response();
    };
    let mut query = match stats_query(params, UnixMillis::now()) {
        Ok(query) => query,
        Err(e) => return e.into_response(),
    };
    if let Some(own) = caller.own_user() {
        query.user = Some(own.to_string());
    }
    match state.store.usage_stats(&query).await {
        Ok(rows) => {
            let mut total = StatsRow::default();
            for row in &rows {
                total.add(row);
            }
            Json(json!({
                "from": query.from,
                "to": query.to,
                "group_by": (query.group_by != StatsGroup::None).then_some(query.group_by.as_str()),
                "data": rows,
                "total": {
                    "requests": total.requests,
                    "errors": total.errors,
                    "prompt_tokens": total.prompt_tokens,
                    "completion_tokens": total.completion_tokens,
                    "cached_tokens": total.cached_tokens,
                    "cost_usd": total.cost_usd,
                },
                // This instance's refused keyless and wrong-key requests (they leave no log row).
                "auth_failures": state.auth_failures.snapshot(UnixMillis::now()),
            }))
            .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading usage statistics failed");
            ApiError::service_unavailable("Usage statistics are unavailable right now.").into_response()
        }
    }
}

/// The store query the parameters ask for, at `now`: `[from, to)` widened to whole hours;
/// `to` defaults to the end of the current hour, `from` to a day before `to`.
///
/// The parameters are read and widened as signed milliseconds (a client may name a time before
/// 1970, and an hour before it floors further back); the range is then clamped to the epoch, before
/// which no usage exists.
fn stats_query(params: StatsParams, now: UnixMillis) -> Result<StatsQuery, ApiError> {
    let group_by = match present(params.group_by.as_deref()) {
        None => StatsGroup::None,
        Some(g) => StatsGroup::parse(g).ok_or_else(|| {
            invalid("group_by", "`group_by` must be one of `key`, `user`, `model`, `provider` (or absent).")
        })?,
    };
    let to = match present(params.to.as_deref()) {
        None => now.to_i64(),
        Some(t) => parse_time(t, "to")?,
    };
    let to_ms = ceil_hour(to).ok_or_else(|| out_of_range("to"))?;
    let from_ms = match present(params.from.as_deref()) {
        None => to_ms.checked_sub(DEFAULT_RANGE_MS).ok_or_else(|| out_of_range("to"))?,
        Some(f) => {
            let from = parse_time(f, "from")?;
            if from >= to {
                return Err(invalid("from", "`from` must be before `to`."));
            }
            floor_hour(from).ok_or_else(|| out_of_range("from"))?
        }
    };
    Ok(StatsQuery {
        from: UnixMillis::from_i64(from_ms),
        to: UnixMillis::from_i64(to_ms),
        group_by,
        key_id: present(params.key_id.as_deref()).map(str::to_string),
        user: present(params.user.as_deref()).map(str::to_string),
    })
}

/// An empty parameter (`?group_by=`) counts as absent.
fn present(param: Option<&str>) -> Option<&str> {
    param.map(str::trim).filter(|p| !p.is_empty())
}

/// Milliseconds since the epoch, an RFC 3339 time, or a date (its UTC midnight).
pub(crate) fn parse_time(value: &str, param: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.timestamp_millis());
    }
    // A `+` left unencoded in a query string arrives as a space: `...T12:00:00 02:00`.
    if let Some((time, offset)) = value.rsplit_once(' ')
        && let Ok(t) = DateTime::parse_from_rfc3339(&format!("{time}+{offset}"))
    {
        return Ok(t.timestamp_millis());
    }
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        && let Some(midnight) = date.and_hms_opt(0, 0, 0)
    {
        return Ok(midnight.and_utc().timestamp_millis());
    }
    Err(invalid(param, &format!("`{param}` must be {TIME_FORMATS}.")))
}

fn floor_hour(ms: i64) -> Option<i64> {
    ms.checked_sub(ms.rem_euclid(HOUR_MS))
}

fn ceil_hour(ms: i64) -> Option<i64> {
    match ms.rem_euclid(HOUR_MS) {
        0 => Some(ms),
        rem => ms.checked_add(HOUR_MS - rem),
    }
}

fn invalid(param: &str, message: &str) -> ApiError {
    ApiError::bad_request(message).with_param(Some(param.to_string()))
}

fn out_of_range(param: &str) -> ApiError {
    invalid(param, &format!("`{param}` is out of range."))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10:00 UTC on 14 November 2023.
    const H: i64 = 1_699_956_000_000;

    fn params(from: Option<&str>, to: Option<&str>, group_by: Option<&str>) -> StatsParams {
        StatsParams {
            from: from.map(str::to_string),
            to: to.map(str::to_string),
            group_by: group_by.map(str::to_string),
            key_id: None,
            user: None,
        }
    }

    fn query(from: Option<&str>, to: Option<&str>, group_by: Option<&str>) -> Result<StatsQuery, ApiError> {
        stats_query(params(from, to, group_by), UnixMillis::from_i64(H + 1_234))
    }

    #[test]
    fn defaults_to_the_last_day_in_whole_hours_the_current_one_included() {
        let q = query(None, None, None).unwrap();
        assert_eq!((q.from.to_i64(), q.to.to_i64()), (H + HOUR_MS - DEFAULT_RANGE_MS, H + HOUR_MS));
        assert_eq!((q.group_by, q.key_id), (StatsGroup::None, None));
    }

    #[test]
    fn times_are_milliseconds_rfc3339_or_dates_widened_to_whole_hours() {
        let q = query(Some("2023-11-14T10:30:00Z"), Some(&(H + HOUR_MS).to_string()), Some("model")).unwrap();
        assert_eq!((q.from.to_i64(), q.to.to_i64(), q.group_by), (H, H + HOUR_MS, StatsGroup::Model));
        // An offset, and one whose `+` arrived as a space.
        for from in ["2023-11-14T12:00:00+02:00", "2023-11-14T12:00:00 02:00"] {
            assert_eq!(query(Some(from), None, None).unwrap().from.to_i64(), H, "{from}");
        }
        let q = query(Some("2023-11-14"), Some("2023-11-15"), Some("")).unwrap();
        assert_eq!(
            (q.from.to_i64(), q.to.to_i64() - q.from.to_i64(), q.group_by),
            (H - 10 * HOUR_MS, DEFAULT_RANGE_MS, StatsGroup::None)
        );
        let q = query(Some(&(H + 1).to_string()), Some(&(H + 2).to_string()), Some("key")).unwrap();
        assert_eq!((q.from.to_i64(), q.to.to_i64()), (H, H + HOUR_MS));
    }

    #[test]
    fn a_range_before_1970_is_clamped_to_the_epoch() {
        let q = query(Some("1969-12-31"), Some("1970-01-01T00:30:00Z"), None).unwrap();
        assert_eq!((q.from, q.to), (UnixMillis::EPOCH, UnixMillis::from_millis(HOUR_MS as u64)));
        let q = query(None, Some("1000"), None).unwrap();
        assert_eq!((q.from, q.to), (UnixMillis::EPOCH, UnixMillis::from_millis(HOUR_MS as u64)));
    }

    #[test]
    fn bad_parameters_name_themselves() {
        for (q, param) in [
            (query(Some("yesterday"), None, None), "from"),
            (query(None, Some("2023-13-01"), None), "to"),
            (query(None, None, Some("team")), "group_by"),
            (query(Some(&H.to_string()), Some(&H.to_string()), None), "from"),
            (query(Some("2023-11-15"), Some("2023-11-14"), None), "from"),
            (query(None, Some(&i64::MAX.to_string()), None), "to"),
        ] {
            let e = q.unwrap_err();
            assert_eq!((e.status.as_u16(), e.param.as_deref()), (400, Some(param)), "{}", e.message);
        }
    }
}
