//! TOTP: enrollment, login with a code or a recovery code, and tenants that require it.

use super::*;

/// Enrolls the signed-in user in TOTP and logs them in again with a code.
async fn enroll_and_log_in(api: &Api, user: &str, password: &str) -> Result<Api, Error> {
    let (_, enrollment) = api.post("/v1/auth/mfa/enroll", &json!({})).await?;
    let secret = enrollment["secret"].as_str().ok_or("no secret")?;
    let (status, confirmed) = api
        .post("/v1/auth/mfa/confirm", &json!({ "code": app_code(secret) }))
        .await?;
    assert_eq!(status, 200, "{confirmed}");
    let (_, step) = api
        .post(
            "/v1/auth/login",
            &json!({ "tenant": "acme", "username": user, "password": password }),
        )
        .await?;
    // The confirming code is spent; a recovery code stands in for the next one.
    let (status, tokens) = api
        .post(
            "/v1/auth/mfa/verify",
            &json!({ "mfa_token": step["mfa_token"], "code": confirmed["recovery_codes"][0] }),
        )
        .await?;
    assert_eq!(status, 200, "{tokens}");
    Ok(api.with_token(tokens["access_token"].as_str().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_enrollment_login_recovery_and_a_tenant_that_requires_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    let bob = user(&running, &admin, "bob", &["viewer"], None).await?;
    let nobody = Api::anonymous(running.http_addr);

    // Requiring MFA needs the administrator's own login to have had a second factor.
    let (status, problem) = admin
        .put("/v1/settings", &json!({ "require_mfa": true }))
        .await?;
    assert_eq!(status, 422, "{problem}");
    let admin = enroll_and_log_in(&admin, "admin", iot_tests::ADMIN_PASSWORD).await?;
    let (status, settings) = admin
        .put("/v1/settings", &json!({ "require_mfa": true }))
        .await?;
    assert_eq!(status, 200, "{settings}");

    // The tenant requires MFA: bob's password-only login opens only his own auth routes.
    let (status, problem) = bob.get("/v1/devices").await?;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("/v1/auth/mfa/enroll")
    );
    assert_eq!(bob.get("/v1/auth/me").await?.0, 200);

    // Enroll: a secret for the app, then a code from it to confirm.
    let (status, enrollment) = bob.post("/v1/auth/mfa/enroll", &json!({})).await?;
    assert_eq!(status, 200, "{enrollment}");
    let secret = enrollment["secret"].as_str().ok_or("no secret")?.to_owned();
    assert!(
        enrollment["otpauth_url"]
            .as_str()
            .unwrap_or_default()
            .starts_with("otpauth://totp/")
    );
    // The database keeps the secret sealed, not as the app got it.
    let stored = running
        .services
        .catalog
        .credential("acme", "bob")
        .await?
        .ok_or("no credential")?;
    let sealed = stored.value.totp.ok_or("no enrollment")?.secret;
    assert!(
        sealed.starts_with("v2:") && !sealed.contains(&secret),
        "{sealed}"
    );
    let (status, problem) = bob
        .post("/v1/auth/mfa/confirm", &json!({ "code": "123456" }))
        .await?;
    assert_eq!(status, 401, "a wrong code: {problem}");
    let (status, confirmed) = bob
        .post(
            "/v1/auth/mfa/confirm",
            &json!({ "code": app_code(&secret) }),
        )
        .await?;
    assert_eq!(status, 200, "{confirmed}");
    let recovery: Vec<String> = serde_json::from_value(confirmed["recovery_codes"].clone())?;
    assert_eq!(recovery.len(), 10);

    // Now a login asks for the second factor.
    let credentials = json!({ "tenant": "acme", "username": "bob", "password": PASSWORD });
    let (status, step) = nobody.post("/v1/auth/login", &credentials).await?;
    assert_eq!(
        (status, step["mfa_required"].clone()),
        (200, json!(true)),
        "{step}"
    );
    assert!(step.get("access_token").is_none(), "{step}");
    let mfa_token = step["mfa_token"].as_str().unwrap_or_default();
    // The intermediate token opens nothing.
    assert_eq!(
        nobody.with_token(mfa_token).get("/v1/auth/me").await?.0,
        401
    );
    let (status, problem) = nobody
        .post(
            "/v1/auth/mfa/verify",
            &json!({ "mfa_token": mfa_token, "code": "000000" }),
        )
        .await?;
    assert_eq!(status, 401, "{problem}");
    // The code that confirmed was used; recovery codes work, each once.
    let (status, tokens) = nobody
        .post(
            "/v1/auth/mfa/verify",
            &json!({ "mfa_token": mfa_token, "code": recovery[0] }),
        )
        .await?;
    assert_eq!(status, 200, "{tokens}");
    let bob = nobody.with_token(tokens["access_token"].as_str().unwrap_or_default());
    assert_eq!(
        bob.get("/v1/devices").await?.0,
        200,
        "a second factor satisfies the tenant"
    );
    let (status, _) = nobody
        .post(
            "/v1/auth/mfa/verify",
            &json!({ "mfa_token": mfa_token, "code": recovery[0] }),
        )
        .await?;
    assert_eq!(status, 401);

    // Neither the secret nor the recovery codes are in the audit log.
    let (status, audit) = admin.get("/v1/audit?actor=bob").await?;
    assert_eq!(status, 200, "{audit}");
    assert!(!audit.to_string().contains(&secret), "{audit}");
    assert!(!audit.to_string().contains(&recovery[1]), "{audit}");

    // A lost phone: the administrator turns bob's MFA off, and his sessions end.
    let (status, answer) = admin.delete("/v1/users/bob/mfa").await?;
    assert_eq!(status, 204, "{answer}");
    assert_eq!(bob.get("/v1/auth/me").await?.0, 401);
    let (_, again) = nobody.post("/v1/auth/login", &credentials).await?;
    assert!(again["access_token"].is_string(), "{again}");
    running.shutdown().await;
    Ok(())
}
