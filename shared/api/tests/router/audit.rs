//! The audit log: every change through the API, who made it, and what was refused.

use crate::{TestResult, admin, api, call, login};
use serde_json::json;

#[tokio::test]
async fn every_change_is_audited_with_its_actor_and_refusals_say_why() -> TestResult {
    let (router, token) = api().await?;
    let plant = json!({ "id": "plant", "name": "Plant" });
    let (status, _) = admin(&router, &token, "POST", "/v1/departments", Some(plant)).await?;
    assert_eq!(status, 201);
    let (status, _) = admin(&router, &token, "GET", "/v1/departments", None).await?;
    assert_eq!(status, 200);
    let vera = json!({ "id": "vera", "name": "Vera", "password": "a viewer password",
                       "roles": ["viewer"] });
    let (status, _) = admin(&router, &token, "POST", "/v1/users", Some(vera)).await?;
    assert_eq!(status, 201);
    let viewer = format!(
        "Bearer {}",
        login(&router, "vera", "a viewer password").await?
    );
    let dock = json!({ "id": "dock", "name": "Dock" });
    let (status, _) = call(
        &router,
        "POST",
        "/v1/departments",
        Some(&viewer),
        Some(dock),
    )
    .await?;
    assert_eq!(status, 403);

    let (status, log) = admin(
        &router,
        &token,
        "GET",
        "/v1/audit?path=/v1/departments",
        None,
    )
    .await?;
    assert_eq!(status, 200, "{log}");
    let entries = log["items"].as_array().ok_or("no items")?;
    // The test's clock stands still, so entries share a time: compare them as a set.
    let mut seen: Vec<(&str, &str, u64)> = entries
        .iter()
        .filter_map(|e| {
            Some((
                e["actor"].as_str()?,
                e["method"].as_str()?,
                e["status"].as_u64()?,
            ))
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [("admin", "POST", 201), ("vera", "POST", 403)],
        "reads are not audited"
    );
    let by = |actor: &str| entries.iter().find(|e| e["actor"] == actor);
    let refused = by("vera").ok_or("no entry of vera")?;
    assert!(refused["after"]["refused"].as_str().is_some(), "{log}");
    let made = by("admin").ok_or("no entry of admin")?;
    assert_eq!(made["after"]["id"], "plant", "{log}");

    let (status, by_vera) = admin(&router, &token, "GET", "/v1/audit?actor=vera", None).await?;
    assert_eq!(status, 200, "{by_vera}");
    let mut paths: Vec<&str> = by_vera["items"]
        .as_array()
        .ok_or("no items")?
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        ["/v1/auth/login", "/v1/departments"],
        "her sign-in and her refusal: {by_vera}"
    );
    let (status, problem) = admin(&router, &token, "GET", "/v1/audit?limit=0", None).await?;
    assert_eq!(status, 400, "{problem}");
    let (status, _) = call(&router, "GET", "/v1/audit", Some(&viewer), None).await?;
    assert_eq!(status, 403, "a viewer does not read the audit log");
    Ok(())
}
