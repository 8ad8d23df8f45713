//! Notifications: templates, channels and routes, checked as they are made, and an alarm that
//! reaches a user's inbox through them.

use crate::{NOW, TestResult, admin, api, call, fleet};
use serde_json::json;

#[tokio::test]
async fn notification_settings_refuse_what_could_never_be_delivered() -> TestResult {
    let (router, token) = api().await?;
    let template = json!({ "id": "text", "name": "Text", "subject": "${rule_name}",
                           "body": "${no_such_variable}" });
    let (status, problem) = admin(&router, &token, "POST", "/v1/templates", Some(template)).await?;
    assert_eq!(status, 422, "an unknown variable: {problem}");

    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.7/hook",
        "file:///etc/passwd",
    ] {
        let hook = json!({ "id": "hook", "name": "Hook",
                           "kind": { "type": "webhook", "flavor": "generic", "url": url } });
        let (status, problem) = admin(&router, &token, "POST", "/v1/channels", Some(hook)).await?;
        assert_eq!(status, 422, "{url}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], "/kind/url", "{problem}");
    }
    let inbox = json!({ "id": "inbox", "name": "Inbox",
                        "kind": { "type": "in_system", "user_ids": ["admin"] } });
    let (status, created) = admin(&router, &token, "POST", "/v1/channels", Some(inbox)).await?;
    assert_eq!(status, 201, "{created}");

    let route = json!({ "id": "to-inbox", "rule_ids": [], "min_level": "warning", "events": [],
                        "template_id": "missing", "channel_id": "inbox" });
    let (status, problem) = admin(
        &router,
        &token,
        "POST",
        "/v1/notification-routes",
        Some(route),
    )
    .await?;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/template_id", "{problem}");
    let (status, routes) = admin(&router, &token, "GET", "/v1/notification-routes", None).await?;
    assert_eq!(status, 200, "{routes}");
    assert_eq!(routes["items"], json!([]), "nothing was saved: {routes}");
    Ok(())
}

#[tokio::test]
async fn an_alarm_reaches_the_inbox_of_the_user_its_route_names() -> TestResult {
    let (router, token) = api().await?;
    let device = format!("Device {}", fleet(&router, &token).await?);
    for (path, body) in [
        (
            "/v1/templates",
            json!({ "id": "text", "name": "Text", "subject": "${rule_name} ${event}",
                    "body": "${device_uid}: ${signal} = ${value}" }),
        ),
        (
            "/v1/channels",
            json!({ "id": "inbox", "name": "Inbox",
                    "kind": { "type": "in_system", "user_ids": ["admin"] } }),
        ),
        (
            "/v1/notification-routes",
            json!({ "id": "to-inbox", "rule_ids": [], "min_level": "warning", "events": [],
                    "template_id": "text", "channel_id": "inbox" }),
        ),
    ] {
        let (status, answer) = admin(&router, &token, "POST", path, Some(body)).await?;
        assert_eq!(status, 201, "{path}: {answer}");
    }
    let reading = json!({ "ts": NOW / 1000, "temp": 45.0, "hum": 40, "co2": 600 });
    let (status, receipt) =
        call(&router, "POST", "/v1/ingest", Some(&device), Some(reading)).await?;
    assert_eq!(status, 200, "{receipt}");

    let inbox = "/v1/users/admin/messages?unread=true";
    let (status, messages) = admin(&router, &token, "GET", inbox, None).await?;
    assert_eq!(status, 200, "{messages}");
    let items = messages["items"].as_array().ok_or("no items")?;
    assert_eq!(items.len(), 1, "{messages}");
    assert_eq!(items[0]["subject"], "Too hot raised", "{messages}");
    assert_eq!(items[0]["body"], "air-1: temperature = 45", "{messages}");
    let id = items[0]["id"].as_str().ok_or("no id")?;
    let read = format!("/v1/users/admin/messages/{id}/read");
    let (status, message) = admin(&router, &token, "POST", &read, None).await?;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["read_at"], NOW, "{message}");
    let (_, unread) = admin(&router, &token, "GET", inbox, None).await?;
    assert_eq!(unread["items"], json!([]), "{unread}");
    Ok(())
}
