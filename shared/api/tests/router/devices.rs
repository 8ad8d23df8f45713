//! The device routes.

use crate::{TestResult, admin, api, fleet};
use serde_json::json;

#[tokio::test]
async fn a_bad_device_request_gets_a_4xx_that_names_the_field() -> TestResult {
    let (router, token) = api().await?;
    fleet(&router, &token).await?;
    let body = json!({ "uid": "air-2", "identification_code": "SN-2", "product_id": "nope",
                       "department_id": "hq" });
    let (status, problem) = admin(&router, &token, "POST", "/v1/devices", Some(body)).await?;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/product_id", "{problem}");
    let (status, _) = admin(&router, &token, "GET", "/v1/devices/air-2", None).await?;
    assert_eq!(status, 404, "nothing was created");
    let (status, device) = admin(&router, &token, "GET", "/v1/devices/air-1", None).await?;
    assert_eq!(status, 200, "{device}");
    assert_eq!(device["product_id"], "air");
    Ok(())
}
