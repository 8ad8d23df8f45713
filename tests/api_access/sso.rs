//! Single sign-on with OpenID Connect ID tokens of a stand-in provider.

use super::*;

/// A stand-in OpenID Connect provider: an EC P-256 key of its own, its JWKS served over HTTP on
/// 127.0.0.1, and ID tokens it signs.
struct IdentityProvider {
    url: String,
    kid: String,
    key: jsonwebtoken::EncodingKey,
    keys: Arc<Mutex<jsonwebtoken::jwk::JwkSet>>,
}

fn ec_key(kid: &str) -> Result<(jsonwebtoken::EncodingKey, jsonwebtoken::jwk::Jwk), Error> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .map_err(|e| format!("key generation: {e}"))?;
    let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256)?;
    jwk.common.key_id = Some(kid.to_owned());
    Ok((key, jwk))
}

impl IdentityProvider {
    async fn start() -> Result<Self, Error> {
        let (key, jwk) = ec_key("key-1")?;
        let keys = Arc::new(Mutex::new(jsonwebtoken::jwk::JwkSet { keys: vec![jwk] }));
        let served = keys.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let set = served
                    .lock()
                    .map(|s| s.clone())
                    .unwrap_or(jsonwebtoken::jwk::JwkSet { keys: vec![] });
                async move { axum::Json(set) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            kid: "key-1".into(),
            key,
            keys,
        })
    }

    /// Replaces the published keys with a new one, as a provider's key rotation does.
    fn rotate(&mut self) -> Result<(), Error> {
        let (key, jwk) = ec_key("key-2")?;
        *self.keys.lock().map_err(|_| "poisoned")? = jsonwebtoken::jwk::JwkSet { keys: vec![jwk] };
        self.key = key;
        self.kid = "key-2".into();
        Ok(())
    }

    fn settings(&self, auto_create: bool) -> Value {
        json!({ "oidc": {
            "issuer": format!("{}/", self.url), "client_id": "iot-web",
            "jwks_uri": format!("{}/jwks", self.url), "username_claim": "email",
            "auto_create": auto_create, "default_roles": ["viewer"]
        } })
    }

    fn id_token(&self, claims: Value) -> Result<String, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let mut all = json!({
            "iss": format!("{}/", self.url), "aud": "iot-web", "sub": "idp-123",
            "iat": now, "exp": now + 300
        });
        if let (Some(base), Some(extra)) = (all.as_object_mut(), claims.as_object()) {
            base.extend(extra.clone());
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &all, &self.key)?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_accepts_the_providers_id_tokens_only() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    let nobody = Api::anonymous(running.http_addr);
    let mut idp = IdentityProvider::start().await?;
    let sso = |token: String| json!({ "tenant": "acme", "id_token": token });

    // Not set up yet.
    let token = idp.id_token(json!({ "email": "carol" }))?;
    assert_eq!(
        nobody.post("/v1/auth/oidc", &sso(token.clone())).await?.0,
        400
    );
    let (status, answer) = admin.put("/v1/settings", &idp.settings(false)).await?;
    assert_eq!(status, 200, "{answer}");
    // A user the administrator has not linked is not let in, even with a matching name.
    let (status, problem) = nobody.post("/v1/auth/oidc", &sso(token.clone())).await?;
    assert_eq!(status, 403, "{problem}");
    admin
        .create(
            "/v1/users",
            &json!({ "id": "carol", "password": PASSWORD, "roles": ["operator"] }),
        )
        .await?;
    let token = idp.id_token(json!({ "email": "carol" }))?;
    let (status, problem) = nobody.post("/v1/auth/oidc", &sso(token)).await?;
    assert_eq!(status, 403, "a matching name is no link: {problem}");
    let (status, linked) = admin
        .put(
            "/v1/users/carol",
            &json!({ "roles": ["operator"], "sso_subject": "idp-123" }),
        )
        .await?;
    assert_eq!(status, 200, "{linked}");
    let token = idp.id_token(json!({ "email": "someone-else" }))?;
    let (status, tokens) = nobody.post("/v1/auth/oidc", &sso(token.clone())).await?;
    assert_eq!(status, 200, "{tokens}");
    // An ID token works once.
    let (status, problem) = nobody.post("/v1/auth/oidc", &sso(token)).await?;
    assert_eq!(status, 401, "a replayed ID token: {problem}");
    let carol = nobody.with_token(tokens["access_token"].as_str().unwrap_or_default());
    let (_, me) = carol.get("/v1/auth/me").await?;
    assert_eq!(
        (me["id"].as_str(), me["roles"].clone()),
        (Some("carol"), json!(["operator"]))
    );

    // Tokens the provider did not issue for us.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    for (why, claims) in [
        (
            "another audience",
            json!({ "email": "carol", "aud": "someone-else" }),
        ),
        (
            "another issuer",
            json!({ "email": "carol", "iss": "https://evil.example/" }),
        ),
        ("expired", json!({ "email": "carol", "exp": now - 3600 })),
    ] {
        let (status, problem) = nobody
            .post("/v1/auth/oidc", &sso(idp.id_token(claims)?))
            .await?;
        assert_eq!(status, 401, "{why}: {problem}");
    }
    let (forger_key, _) = ec_key("key-1")?;
    let forged = IdentityProvider {
        key: forger_key,
        ..IdentityProvider::start().await?
    };
    let forged = IdentityProvider {
        url: idp.url.clone(),
        ..forged
    };
    let (status, _) = nobody
        .post(
            "/v1/auth/oidc",
            &sso(forged.id_token(json!({ "email": "carol" }))?),
        )
        .await?;
    assert_eq!(status, 401, "signed by a key the provider does not publish");
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "iss": format!("{}/", idp.url), "aud": "iot-web", "sub": "x", "email": "carol", "exp": now + 300 }),
        &jsonwebtoken::EncodingKey::from_secret(b"a shared secret nobody should accept"),
    )?;
    let (status, problem) = nobody.post("/v1/auth/oidc", &sso(hs256)).await?;
    assert_eq!(status, 401, "{problem}");

    // The provider rotates its key: the new one is fetched when a token names it.
    idp.rotate()?;
    let (status, answer) = nobody
        .post(
            "/v1/auth/oidc",
            &sso(idp.id_token(json!({ "email": "carol" }))?),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");

    // With auto_create, a first sign-in creates the user with the default roles, named by a
    // verified e-mail address only, and never takes over a local user of that name.
    admin.put("/v1/settings", &idp.settings(true)).await?;
    for (why, claims, expected) in [
        (
            "an unverified address",
            json!({ "sub": "idp-456", "email": "Dave@Example.com", "email_verified": false }),
            401,
        ),
        (
            "a local user's name",
            json!({ "sub": "idp-789", "email": "admin", "email_verified": true }),
            403,
        ),
    ] {
        let (status, problem) = nobody
            .post("/v1/auth/oidc", &sso(idp.id_token(claims)?))
            .await?;
        assert_eq!(status, expected, "{why}: {problem}");
    }
    let (status, tokens) = nobody
        .post(
            "/v1/auth/oidc",
            &sso(idp.id_token(
                json!({ "sub": "idp-456", "email": "Dave@Example.com", "email_verified": true, "name": "Dave" }),
            )?),
        )
        .await?;
    assert_eq!(status, 200, "{tokens}");
    let dave = nobody.with_token(tokens["access_token"].as_str().unwrap_or_default());
    assert_eq!(dave.get("/v1/devices").await?.0, 200);
    assert_eq!(dave.post("/v1/devices", &json!({})).await?.0, 403);
    let (_, user) = admin.get("/v1/users/dave_example.com").await?;
    assert_eq!(
        (user["name"].as_str(), user["roles"].clone()),
        (Some("Dave"), json!(["viewer"])),
        "{user}"
    );
    // The tenant's TOTP applies to single sign-on unless it trusts the provider's `amr`.
    let (_, enrollment) = dave.post("/v1/auth/mfa/enroll", &json!({})).await?;
    let secret = enrollment["secret"].as_str().ok_or("no secret")?;
    let (status, confirmed) = dave
        .post("/v1/auth/mfa/confirm", &json!({ "code": app_code(secret) }))
        .await?;
    assert_eq!(status, 200, "{confirmed}");
    let token = |amr: Value| {
        idp.id_token(json!({ "sub": "idp-456", "email": "Dave@Example.com", "email_verified": true, "amr": amr }))
    };
    let (status, step) = nobody
        .post("/v1/auth/oidc", &sso(token(json!(["pwd", "mfa"]))?))
        .await?;
    assert_eq!(
        (status, &step["mfa_required"]),
        (200, &json!(true)),
        "{step}"
    );
    let (status, tokens) = nobody
        .post(
            "/v1/auth/mfa/verify",
            &json!({ "mfa_token": step["mfa_token"], "code": confirmed["recovery_codes"][0] }),
        )
        .await?;
    assert_eq!(status, 200, "{tokens}");
    let mut trusting = idp.settings(true);
    trusting["oidc"]["trust_amr"] = json!(true);
    admin.put("/v1/settings", &trusting).await?;
    let (status, tokens) = nobody
        .post("/v1/auth/oidc", &sso(token(json!(["pwd", "mfa"]))?))
        .await?;
    assert!(
        status == 200 && tokens["access_token"].is_string(),
        "{tokens}"
    );
    let (status, step) = nobody
        .post("/v1/auth/oidc", &sso(token(json!(["pwd"]))?))
        .await?;
    assert_eq!(
        (status, &step["mfa_required"]),
        (200, &json!(true)),
        "{step}"
    );

    // Insecure provider settings are refused.
    let (status, _) = admin
        .put("/v1/settings", &json!({ "oidc": { "issuer": "http://idp.example/", "client_id": "x", "jwks_uri": "http://idp.example/jwks" } }))
        .await?;
    assert_eq!(status, 422);
    running.shutdown().await;
    Ok(())
}
