//! Users and roles: who signs in, with what, and what their roles let them reach.

use crate::{PASSWORD, TestResult, admin, api, call, login};
use serde_json::json;

#[tokio::test]
async fn an_administrator_manages_a_user_and_the_users_sessions_follow() -> TestResult {
    let (router, token) = api().await?;
    let otto = json!({ "id": "otto", "name": "Otto", "password": "short", "roles": ["operator"] });
    let (status, problem) = admin(&router, &token, "POST", "/v1/users", Some(otto)).await?;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/password", "{problem}");

    let otto = json!({ "id": "otto", "name": "Otto", "password": "otto's first password",
                       "roles": ["operator"] });
    let (status, created) = admin(&router, &token, "POST", "/v1/users", Some(otto.clone())).await?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["roles"], json!(["operator"]), "{created}");
    assert!(created.get("password").is_none(), "{created}");
    let (status, _) = admin(&router, &token, "POST", "/v1/users", Some(otto)).await?;
    assert_eq!(status, 409, "a login is taken once");
    let (status, users) = admin(&router, &token, "GET", "/v1/users", None).await?;
    assert_eq!(status, 200, "{users}");
    let ids: Vec<&str> = users["items"]
        .as_array()
        .ok_or("no items")?
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert_eq!(ids, ["admin", "otto"]);

    let session = format!(
        "Bearer {}",
        login(&router, "otto", "otto's first password").await?
    );
    let (status, me) = call(&router, "GET", "/v1/auth/me", Some(&session), None).await?;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], "otto", "{me}");
    let (status, _) = call(&router, "GET", "/v1/users", Some(&session), None).await?;
    assert_eq!(status, 403, "an operator does not manage users");

    // A reset password ends the user's sessions; only the new one signs in.
    let reset = json!({ "password": "otto's second password" });
    let path = "/v1/users/otto/password";
    let (status, _) = admin(&router, &token, "PUT", path, Some(reset)).await?;
    assert_eq!(status, 204);
    let (status, _) = call(&router, "GET", "/v1/auth/me", Some(&session), None).await?;
    assert_eq!(status, 401, "the old session ended");
    assert!(
        login(&router, "otto", "otto's first password")
            .await
            .is_err()
    );
    login(&router, "otto", "otto's second password").await?;

    // Disabled, then deleted: no sign-in either way.
    let disabled = json!({ "name": "Otto", "roles": ["operator"], "disabled": true });
    let (status, saved) = admin(&router, &token, "PUT", "/v1/users/otto", Some(disabled)).await?;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["disabled"], true);
    assert!(
        login(&router, "otto", "otto's second password")
            .await
            .is_err()
    );
    let (status, _) = admin(&router, &token, "DELETE", "/v1/users/otto", None).await?;
    assert_eq!(status, 204);
    let (status, _) = admin(&router, &token, "GET", "/v1/users/otto", None).await?;
    assert_eq!(status, 404);
    login(&router, "admin", PASSWORD).await?;
    Ok(())
}

/// A role made through the API grants what it lists and nothing else; deleting it takes it
/// from its members at once.
#[tokio::test]
async fn a_custom_role_grants_exactly_its_permissions() -> TestResult {
    let (router, token) = api().await?;
    let role = json!({ "permissions": [{ "object": "/v1/alarms*", "action": "GET" }] });
    let (status, saved) =
        admin(&router, &token, "PUT", "/v1/roles/alarm-reader", Some(role)).await?;
    assert_eq!(status, 200, "{saved}");
    let bad = json!({ "permissions": [{ "object": "/v1/alarms*", "verb": "GET" }] });
    let (status, problem) = admin(&router, &token, "PUT", "/v1/roles/bad", Some(bad)).await?;
    assert!(
        (400..500).contains(&status),
        "an unknown field: {status} {problem}"
    );
    let ana = json!({ "id": "ana", "name": "Ana", "password": "ana's first password",
                      "roles": ["alarm-reader"] });
    let (status, created) = admin(&router, &token, "POST", "/v1/users", Some(ana)).await?;
    assert_eq!(status, 201, "{created}");
    let (status, role) = admin(&router, &token, "GET", "/v1/roles/alarm-reader", None).await?;
    assert_eq!(status, 200, "{role}");
    assert_eq!(role["members"], json!(["ana"]), "{role}");

    let ana = format!(
        "Bearer {}",
        login(&router, "ana", "ana's first password").await?
    );
    let (status, _) = call(&router, "GET", "/v1/alarms", Some(&ana), None).await?;
    assert_eq!(status, 200);
    for (method, path) in [("GET", "/v1/devices"), ("POST", "/v1/alarms/x/clear")] {
        let (status, problem) = call(&router, method, path, Some(&ana), None).await?;
        assert_eq!(status, 403, "{method} {path}: {problem}");
    }
    let (status, _) = admin(&router, &token, "DELETE", "/v1/roles/alarm-reader", None).await?;
    assert_eq!(status, 204);
    let (status, _) = call(&router, "GET", "/v1/alarms", Some(&ana), None).await?;
    assert_eq!(status, 403, "the role is gone from her");
    Ok(())
}
