//! Access and refresh tokens: tampered, expired and revoked ones refused, lockout after failed
//! logins, refresh rotation, and key rings that rotate without signing anyone out.

use super::*;

/// A token signed with the platform's own key, as the platform would, but with chosen claims.
fn forge(dir: &std::path::Path, claims: &AccessClaims) -> Result<String, Error> {
    let ring = std::fs::read_to_string(dir.join("signing.key"))?;
    let key = ring.split_whitespace().next().ok_or("an empty key ring")?;
    Ok(TokenKeys::from_secret(key.as_bytes())?.sign(claims)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_expired_and_revoked_tokens_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    assert_eq!(admin.get("/v1/devices").await?.0, 200);
    let token = admin.token().ok_or("no token")?.to_owned();

    // The payload changed (another tenant), the signature kept.
    let parts: Vec<&str> = token.split('.').collect();
    let payload =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1])?;
    let mut claims: AccessClaims = serde_json::from_slice(&payload)?;
    let mut forged = claims.clone();
    forged.tid = "other".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&forged)?
        ),
        parts[2]
    );
    let (status, problem) = admin.with_token(&tampered).get("/v1/devices").await?;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("not valid"),
        "{problem}"
    );
    // Signed by another key.
    let other_key = TokenKeys::from_secret(&[1u8; 32])?;
    let (status, _) = admin
        .with_token(&other_key.sign(&claims)?)
        .get("/v1/devices")
        .await?;
    assert_eq!(status, 401);
    // Expired: the right key and session, a past expiry.
    claims.exp = claims.iat - 1;
    let (status, problem) = admin
        .with_token(&forge(dir.path(), &claims)?)
        .get("/v1/devices")
        .await?;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{problem}"
    );
    // A session that does not exist, with a valid signature.
    let ghost = AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sid: "no-such-session".into(),
        exp: claims.iat + 600,
        ..claims.clone()
    };
    let (status, _) = admin
        .with_token(&forge(dir.path(), &ghost)?)
        .get("/v1/devices")
        .await?;
    assert_eq!(status, 401);

    // Logout ends the access token at once.
    assert_eq!(admin.post("/v1/auth/logout", &json!({})).await?.0, 204);
    let (status, problem) = admin.get("/v1/devices").await?;
    assert_eq!(status, 401, "{problem}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_lock_after_failures_and_refresh_tokens_rotate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let nobody = Api::anonymous(running.http_addr);
    let login =
        |password: &str| json!({ "tenant": "acme", "username": "admin", "password": password });
    for _ in 0..4 {
        let (status, problem) = nobody.post("/v1/auth/login", &login("wrong")).await?;
        assert_eq!(status, 401, "{problem}");
    }
    let (status, problem) = nobody.post("/v1/auth/login", &login("wrong")).await?;
    assert_eq!(status, 423, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("locked until")
    );
    let (status, _) = nobody
        .post("/v1/auth/login", &login(ADMIN_PASSWORD))
        .await?;
    assert_eq!(status, 423, "the right password waits out the lock too");
    // An unknown user answers as a wrong password does.
    let (status, problem) = nobody
        .post(
            "/v1/auth/login",
            &json!({ "tenant": "acme", "username": "ghost", "password": "x" }),
        )
        .await?;
    assert_eq!(
        (status, problem["detail"].clone()),
        (401, json!("the user name or the password is wrong"))
    );

    // Another account is not affected; its refresh token works once.
    running
        .auth
        .bootstrap_tenant("beta", "root", ADMIN_PASSWORD)
        .await?;
    let (status, first) = nobody
        .post(
            "/v1/auth/login",
            &json!({ "tenant": "beta", "username": "root", "password": ADMIN_PASSWORD }),
        )
        .await?;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["token_type"], "Bearer");
    let refresh = |token: &Value| json!({ "refresh_token": token });
    let (status, second) = nobody
        .post("/v1/auth/refresh", &refresh(&first["refresh_token"]))
        .await?;
    assert_eq!(status, 200, "{second}");
    let signed_in = nobody.with_token(second["access_token"].as_str().unwrap_or_default());
    let (status, me) = signed_in.get("/v1/auth/me").await?;
    assert_eq!((status, me["id"].as_str()), (200, Some("root")), "{me}");
    // The first refresh token again: the session ends for whoever holds it.
    let (status, _) = nobody
        .post("/v1/auth/refresh", &refresh(&first["refresh_token"]))
        .await?;
    assert_eq!(status, 401);
    assert_eq!(signed_in.get("/v1/auth/me").await?.0, 401);
    running.shutdown().await;
    Ok(())
}

/// The TOTP seed of an acme user as the database keeps it.
async fn sealed_seed(running: &Running, user: &str) -> Result<String, Error> {
    Ok(running
        .services
        .catalog
        .credential("acme", user)
        .await?
        .and_then(|c| c.value.totp)
        .ok_or("no enrollment")?
        .secret)
}

/// The `kid` header of a token.
fn kid(token: &str) -> Result<String, Error> {
    Ok(jsonwebtoken::decode_header(token)?
        .kid
        .ok_or("a token without kid")?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_sign_anew_without_signing_anyone_out() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    let bob = user(&running, &admin, "bob", &["viewer"], None).await?;
    let (_, enrollment) = bob.post("/v1/auth/mfa/enroll", &json!({})).await?;
    let secret = enrollment["secret"].as_str().ok_or("no secret")?.to_owned();
    let (status, confirmed) = bob
        .post(
            "/v1/auth/mfa/confirm",
            &json!({ "code": app_code(&secret) }),
        )
        .await?;
    assert_eq!(status, 200, "{confirmed}");
    let sealed_before = sealed_seed(&running, "bob").await?;
    let old_token = admin.token().ok_or("no token")?.to_owned();
    running.shutdown().await;

    iot_local::secrets::rotate_keys(dir.path())?;
    let running = start_platform(dir.path(), None).await?;
    // A token of the old key still opens the API; a new login is signed by the new key.
    let old_admin = Api::anonymous(running.http_addr).with_token(&old_token);
    assert_eq!(old_admin.get("/v1/devices").await?.0, 200);
    let fresh = Api::new(running.http_addr).await?;
    assert_ne!(kid(fresh.token().unwrap_or_default())?, kid(&old_token)?);
    // Bob's seed, sealed under the old sealing key, still checks his code (the next step's,
    // as the confirming one is spent) and is sealed again under the new key.
    let anonymous = Api::anonymous(running.http_addr);
    let (_, step) = anonymous
        .post(
            "/v1/auth/login",
            &json!({ "tenant": "acme", "username": "bob", "password": iot_tests::USER_PASSWORD }),
        )
        .await?;
    let next_step = TotpEnrollment {
        secret: secret.clone(),
        confirmed: true,
        last_step: 0,
    }
    .code_at(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64
            + 30_000,
    );
    let (status, tokens) = anonymous
        .post(
            "/v1/auth/mfa/verify",
            &json!({ "mfa_token": step["mfa_token"], "code": next_step }),
        )
        .await?;
    assert_eq!(status, 200, "{tokens}");
    let sealed_after = sealed_seed(&running, "bob").await?;
    assert_ne!(
        sealed_after, sealed_before,
        "sealed again under the new key"
    );
    running.shutdown().await;

    // Two rotations later the first key has left the ring: its tokens are refused.
    iot_local::secrets::rotate_keys(dir.path())?;
    iot_local::secrets::rotate_keys(dir.path())?;
    let running = start_platform(dir.path(), None).await?;
    let old_admin = Api::anonymous(running.http_addr).with_token(&old_token);
    let (status, problem) = old_admin.get("/v1/devices").await?;
    assert_eq!(status, 401, "{problem}");
    running.shutdown().await;
    Ok(())
}
