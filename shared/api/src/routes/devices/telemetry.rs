//! A device's telemetry: ranges of points, latest values and aggregates.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use iot_core::model::Value as SignalValue;
use iot_core::ports::{AggregateQuery, Bucket, RangeQuery};
use iot_core::stats::Window;
use iot_core::time::{HOUR, MINUTE, Millis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::device_of;
use crate::ApiState;
use crate::described::{ApiRouter, routes};
use crate::error::{ApiError, ApiResult};
use crate::input::{Caller, list, parse_time};
use crate::routes::fleet_limits::{clamp_window, readable_range, readable_since};
use utoipa::{IntoParams, ToSchema};

pub(super) fn routes() -> ApiRouter<Arc<ApiState>> {
    ApiRouter::new()
        .routes(routes!(range))
        .routes(routes!(latest))
        .routes(routes!(aggregate))
}

/// Most points one range request returns.
const MAX_POINTS: usize = 10_000;
/// Most signals one query names.
const MAX_SIGNALS: usize = 100;

fn check_signals(signals: &[String]) -> ApiResult<()> {
    if signals.len() > MAX_SIGNALS {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "/signals",
            format!("{} signals; at most {MAX_SIGNALS} per query", signals.len()),
        ));
    }
    Ok(())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RangeParams {
    /// Comma-separated signal names; all signals if absent.
    signals: Option<String>,
    /// One signal: the one to aggregate, or one more to read.
    signal: Option<String>,
    /// Epoch ms or RFC 3339; default: an hour before `to`.
    from: Option<String>,
    /// Epoch ms or RFC 3339; default: now.
    to: Option<String>,
    /// Most points (1000 if absent; at most 10000).
    limit: Option<usize>,
    /// `asc` (default) or `desc`.
    order: Option<String>,
    /// Bucket width for aggregates, in ms (default one minute).
    bucket_ms: Option<Millis>,
}

impl RangeParams {
    fn window(&self, now: Millis) -> ApiResult<Window> {
        let end = match &self.to {
            Some(t) => parse_time("to", t)?,
            None => now,
        };
        let start = match &self.from {
            Some(t) => parse_time("from", t)?,
            None => end - HOUR,
        };
        if start > end {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "/from",
                "must not be after `to`",
            ));
        }
        Ok(Window { start, end })
    }
}

#[utoipa::path(
    get, path = "/v1/devices/{uid}/telemetry", tag = "telemetry",
    params(RangeParams),
    responses((status = 200, description = "Points in the window", body = RangeView))
)]
async fn range(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
    query: Result<Query<RangeParams>, QueryRejection>,
) -> ApiResult<Json<RangeView>> {
    let params = query?.0;
    let device = device_of(&state, &caller, &uid).await?;
    let descending = match params.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "/order",
                format!("{other:?}: use asc or desc"),
            ));
        }
    };
    let mut signals = list(params.signals.as_deref());
    signals.extend(params.signal.clone());
    check_signals(&signals)?;
    let window = params.window(state.clock.now_ms())?;
    let points = readable_range(
        &state,
        &device,
        RangeQuery {
            device_uid: uid.clone(),
            signals,
            window,
            limit: Some(params.limit.unwrap_or(1_000).min(MAX_POINTS)),
            descending,
        },
    )
    .await?;
    let points = points
        .into_iter()
        .map(|p| PointView {
            time: p.time,
            signal: p.signal,
            value: p.value,
        })
        .collect();
    Ok(Json(RangeView {
        device_uid: uid,
        points,
    }))
}

#[derive(Serialize, ToSchema)]
struct RangeView {
    device_uid: String,
    points: Vec<PointView>,
}

#[derive(Serialize, ToSchema)]
struct PointView {
    /// Epoch ms.
    time: Millis,
    signal: String,
    value: SignalValue,
}

#[derive(Serialize, ToSchema)]
struct LatestView {
    device_uid: String,
    /// By signal name.
    signals: BTreeMap<String, TimedValue>,
}

#[derive(Serialize, ToSchema)]
struct TimedValue {
    /// Epoch ms.
    time: Millis,
    value: SignalValue,
}

#[derive(Serialize, ToSchema)]
struct AggregateView {
    device_uid: String,
    signal: String,
    bucket_ms: Millis,
    buckets: Vec<Bucket>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LatestParams {
    /// Comma-separated signal names; all signals if absent.
    signals: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/devices/{uid}/latest", tag = "telemetry",
    params(LatestParams),
    responses((status = 200, description = "The latest value of each signal", body = LatestView))
)]
async fn latest(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
    query: Result<Query<LatestParams>, QueryRejection>,
) -> ApiResult<Json<LatestView>> {
    let params = query?.0;
    let device = device_of(&state, &caller, &uid).await?;
    let since = readable_since(&state, &device).await?;
    let points = state
        .telemetry
        .latest(&uid, &{
            let signals = list(params.signals.as_deref());
            check_signals(&signals)?;
            signals
        })
        .await?;
    let signals = points
        .into_iter()
        .filter(|p| p.time >= since)
        .map(|p| {
            (
                p.signal,
                TimedValue {
                    time: p.time,
                    value: p.value,
                },
            )
        })
        .collect();
    Ok(Json(LatestView {
        device_uid: uid,
        signals,
    }))
}

#[utoipa::path(
    get, path = "/v1/devices/{uid}/aggregate", tag = "telemetry",
    params(RangeParams),
    responses((status = 200, description = "Per-bucket count, min, max, sum, average, first and last", body = AggregateView))
)]
async fn aggregate(
    State(state): State<Arc<ApiState>>,
    Caller(caller): Caller,
    Path(uid): Path<String>,
    query: Result<Query<RangeParams>, QueryRejection>,
) -> ApiResult<Json<AggregateView>> {
    let params = query?.0;
    let device = device_of(&state, &caller, &uid).await?;
    let Some(signal) = params.signal.clone() else {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "/signal",
            "name the signal to aggregate",
        ));
    };
    let window = params.window(state.clock.now_ms())?;
    let bucket_ms = params.bucket_ms.unwrap_or(MINUTE);
    if bucket_ms <= 0 || (window.end - window.start) / bucket_ms > MAX_POINTS as Millis {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "/bucket_ms",
            format!("must be > 0 and give at most {MAX_POINTS} buckets over the window"),
        ));
    }
    let buckets = match clamp_window(window, readable_since(&state, &device).await?) {
        None => Vec::new(),
        Some(window) => {
            state
                .telemetry
                .aggregate(&AggregateQuery {
                    device_uid: uid.clone(),
                    signal: signal.clone(),
                    window,
                    bucket_ms,
                })
                .await?
        }
    };
    Ok(Json(AggregateView {
        device_uid: uid,
        signal,
        bucket_ms,
        buckets,
    }))
}
