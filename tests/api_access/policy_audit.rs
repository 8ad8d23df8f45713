//! The policy as Casbin CSV, and the audit log of every change.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_round_trips_as_casbin_csv_and_cannot_lock_out_its_editor() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    user(&running, &admin, "otto", &["operator"], None).await?;
    let (status, csv) = admin.get_text("/v1/policy").await?;
    assert_eq!(status, 200);
    assert!(csv.contains("p, admin, acme, /v1/*, *\n"), "{csv}");
    assert!(csv.contains("g, otto, operator, acme\n"), "{csv}");

    // Add a role that may only read alarms, and give it to otto instead of operator.
    let edited = csv.replace("g, otto, operator, acme\n", "g, otto, alarm-reader, acme\n")
        + "p, alarm-reader, acme, /v1/alarms*, GET\n";
    let (status, summary) = admin.put_text("/v1/policy", &edited).await?;
    assert_eq!(status, 200, "{summary}");
    let otto = Api::login(running.http_addr, "acme", "otto", PASSWORD).await?;
    assert_eq!(otto.get("/v1/alarms").await?.0, 200);
    assert_eq!(otto.get("/v1/devices").await?.0, 403);
    let (_, roles) = admin.get("/v1/roles/alarm-reader").await?;
    assert_eq!(roles["members"], json!(["otto"]), "{roles}");
    let (_, exported) = admin.get_text("/v1/policy").await?;
    assert!(
        exported.contains("p, alarm-reader, acme, /v1/alarms*, GET"),
        "{exported}"
    );

    // Administrators cannot disable themselves or reset their own TOTP through the admin
    // routes (that ended their own session); their token keeps working.
    let (status, problem) = admin
        .put(
            "/v1/users/admin",
            &json!({ "name": "admin", "roles": ["admin"], "disabled": true }),
        )
        .await?;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/disabled", "{problem}");
    let (status, problem) = admin.delete("/v1/users/admin/mfa").await?;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(admin.get("/v1/auth/me").await?.0, 200);

    // A policy that takes the editor's own right away is refused, and so is nonsense.
    let (status, problem) = admin
        .put_text(
            "/v1/policy",
            "p, viewer, acme, /v1/*, GET\ng, admin, viewer, acme\n",
        )
        .await?;
    assert_eq!(status, 422, "{problem}");
    let (status, problem) = admin.put_text("/v1/policy", "p, admin, acme\n").await?;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("line 1"),
        "{problem}"
    );
    let (status, problem) = admin
        .put_text(
            "/v1/policy",
            "p, admin, acme, /v1/*, *\ng, admin, admin, acme\ng, mallory, admin, acme\n",
        )
        .await?;
    assert_eq!(status, 422, "an unknown user: {problem}");
    assert_eq!(
        admin.get("/v1/users").await?.0,
        200,
        "the admin still is one"
    );
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_audited_with_who_what_when_where_and_before_after() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    admin
        .create(
            "/v1/departments",
            &json!({ "id": "hq", "name": "Head office" }),
        )
        .await?;
    admin
        .put("/v1/departments/hq", &json!({ "name": "Headquarters" }))
        .await?;
    admin
        .create(
            "/v1/users",
            &json!({ "id": "bob", "password": "bob's first password", "roles": ["viewer"] }),
        )
        .await?;
    let bob = Api::login(running.http_addr, "acme", "bob", "bob's first password").await?;
    // A refused change is recorded too, and a failed login.
    assert_eq!(
        bob.post("/v1/departments", &json!({ "id": "x", "name": "x" }))
            .await?
            .0,
        403
    );
    let (status, _) = Api::anonymous(running.http_addr)
        .post(
            "/v1/auth/login",
            &json!({ "tenant": "acme", "username": "bob", "password": "guess" }),
        )
        .await?;
    assert_eq!(status, 401);
    admin.delete("/v1/departments/hq").await?;
    // Reads are not audited.
    admin.get("/v1/departments").await?;

    let (status, page) = admin.get("/v1/audit?path=/v1/departments").await?;
    assert_eq!(status, 200, "{page}");
    let entries = page["items"].as_array().ok_or("no items")?;
    let summary: Vec<(String, String, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or_default().to_owned(),
                e["method"].as_str().unwrap_or_default().to_owned(),
                e["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let expected = [
        ("admin", "DELETE", 204),
        ("bob", "POST", 403),
        ("admin", "PUT", 200),
        ("admin", "POST", 201),
    ];
    let expected: Vec<(String, String, u64)> = expected
        .iter()
        .map(|(a, m, s)| (a.to_string(), m.to_string(), *s))
        .collect();
    assert_eq!(summary, expected, "newest first: {page}");
    let put = &entries[2];
    assert_eq!(put["before"]["name"], "Head office", "{put}");
    assert_eq!(put["after"]["name"], "Headquarters", "{put}");
    assert_eq!(put["source"], "127.0.0.1", "{put}");
    assert!(put["at"].as_i64().unwrap_or_default() >= started, "{put}");
    let delete = &entries[0];
    assert_eq!(
        (delete["before"]["name"].clone(), delete["after"].clone()),
        (json!("Headquarters"), Value::Null)
    );
    assert!(
        entries[1]["after"]["refused"]
            .as_str()
            .unwrap_or_default()
            .contains("viewer")
    );

    // The failed login, under the name it tried; the user's password never shows.
    let (_, logins) = admin.get("/v1/audit?path=/v1/auth/login&actor=bob").await?;
    assert_eq!(logins["items"][0]["status"], 401, "{logins}");
    let (_, created) = admin.get("/v1/audit?path=/v1/users&actor=admin").await?;
    assert!(
        !created.to_string().contains("bob's first password"),
        "{created}"
    );
    assert_eq!(created["items"][0]["after"]["id"], "bob", "{created}");

    // Paging: one at a time, no repeats, to the end.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit?path=/v1/departments&limit=1&cursor={c}"),
            None => "/v1/audit?path=/v1/departments&limit=1".to_owned(),
        };
        let (_, page) = admin.get(&path).await?;
        seen.extend(
            page["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e["id"].clone()),
        );
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(seen.len() <= entries.len(), "paging does not end");
    }
    let ids: Vec<Value> = entries.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(seen, ids);
    running.shutdown().await;
    Ok(())
}
