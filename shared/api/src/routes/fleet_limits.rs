//! What a tenant's record asks of its devices: uids in the tenant's namespace, no more
//! devices than its quota, and reads that reach back no further than the device's
//! registration and the tenant's retention.

use axum::http::StatusCode;
use iot_core::model::Device;
use iot_core::ports::{Point, RangeQuery};
use iot_core::stats::Window;
use iot_core::time::Millis;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};

/// Checks a new device against its tenant's uid namespace and device quota, and starts its
/// data after any earlier device of its uid.
pub(crate) async fn admit_new_device(state: &ApiState, device: &mut Device) -> ApiResult<()> {
    let tenant = state
        .catalog
        .tenant(&device.tenant_id)
        .await?
        .map(|v| v.value);
    match &tenant {
        Some(tenant) if !tenant.owns_uid(&device.uid) => {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/uid",
                format!(
                    "uids of tenant {:?} begin with {:?}, e.g. {:?}",
                    tenant.id,
                    tenant.uid_prefix.as_deref().unwrap_or_default(),
                    format!("{}pump-1", tenant.uid_prefix.as_deref().unwrap_or_default())
                ),
            ));
        }
        Some(_) => {}
        // An unmanaged tenant (the platform's own) keeps out of managed tenants' namespaces.
        None => {
            if let Some((owner, _)) = device.uid.split_once('_')
                && owner != device.tenant_id
                && state.catalog.tenant(owner).await?.is_some()
            {
                return Err(ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "/uid",
                    format!("uids beginning {owner:?}_ belong to tenant {owner:?}"),
                ));
            }
        }
    }
    if let Some(max) = tenant.as_ref().and_then(|t| t.quotas.max_devices) {
        let max = max as usize;
        if state.catalog.count_devices(&device.tenant_id, max).await? >= max {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "the tenant has its quota of {max} devices; delete one or ask the platform operator for more"
                ),
            ));
        }
    }
    device.data_since = state
        .catalog
        .uid_retired_at(&device.uid)
        .await?
        .unwrap_or(0);
    Ok(())
}

/// The earliest time of the device's data the caller may read: not from an earlier device of
/// its uid, nor beyond the tenant's retention.
pub(crate) async fn readable_since(state: &ApiState, device: &Device) -> ApiResult<Millis> {
    let retention = state
        .catalog
        .tenant(&device.tenant_id)
        .await?
        .and_then(|t| t.value.readable_since(state.clock.now_ms()));
    Ok(retention.map_or(device.data_since, |r| r.max(device.data_since)))
}

/// The device's points in `window` the caller may read (see [`readable_since`]): the query
/// with its window cut, or nothing if none of the window is readable.
pub(crate) async fn readable_range(
    state: &ApiState,
    device: &Device,
    query: RangeQuery,
) -> ApiResult<Vec<Point>> {
    match clamp_window(query.window, readable_since(state, device).await?) {
        None => Ok(Vec::new()),
        Some(window) => Ok(state
            .telemetry
            .range(&RangeQuery { window, ..query })
            .await?),
    }
}

/// `window` cut to start no earlier than `since`; `None` if nothing of it is left.
pub(crate) fn clamp_window(window: Window, since: Millis) -> Option<Window> {
    (window.end >= since).then(|| Window {
        start: window.start.max(since),
        end: window.end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_cut_at_the_readable_start() {
        let w = Window { start: 10, end: 20 };
        assert_eq!(clamp_window(w, 5), Some(w));
        assert_eq!(clamp_window(w, 15), Some(Window { start: 15, end: 20 }));
        assert_eq!(clamp_window(w, 21), None);
    }
}
