//! The platform's REST API as the smoke test calls it: JSON in and out, one signed-in user.

use serde_json::Value;

use crate::SmokeError;

pub struct Api {
    base: String,
    client: reqwest::Client,
    token: Option<String>,
}

impl Api {
    /// Signs in as `username` of `tenant` (the platform's default tenant without one).
    pub async fn sign_in(
        base: &str,
        tenant: Option<&str>,
        username: &str,
        password: &str,
    ) -> Result<Self, SmokeError> {
        let mut api = Self {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            token: None,
        };
        let mut body = serde_json::json!({ "username": username, "password": password });
        if let Some(tenant) = tenant {
            body["tenant"] = tenant.into();
        }
        let tokens = api
            .expect("POST", "/v1/auth/login", Some(&body), 200)
            .await?;
        let token = tokens["access_token"]
            .as_str()
            .ok_or_else(|| SmokeError::Unexpected {
                call: "POST /v1/auth/login".into(),
                what: format!("no access_token in {tokens}"),
            })?;
        api.token = Some(token.to_owned());
        Ok(api)
    }

    /// The call's status and JSON body (`null` when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), SmokeError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    /// [`Self::call`], failing unless the status is `want`.
    pub async fn expect(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        want: u16,
    ) -> Result<Value, SmokeError> {
        let (status, value) = self.call(method, path, body).await?;
        if status != want {
            return Err(SmokeError::Status {
                call: format!("{method} {path}"),
                status,
                want,
                body: value.to_string(),
            });
        }
        Ok(value)
    }

    /// The device token's HTTP ingest: the payload as the device would publish it.
    pub async fn ingest(&self, device_token: &str, payload: &[u8]) -> Result<(), SmokeError> {
        let response = self
            .client
            .post(format!("{}/v1/ingest", self.base))
            .header("authorization", format!("Device {device_token}"))
            .header("content-type", "application/octet-stream")
            .body(payload.to_vec())
            .send()
            .await?;
        let status = response.status().as_u16();
        if !matches!(status, 200 | 202) {
            return Err(SmokeError::Status {
                call: "POST /v1/ingest".into(),
                status,
                want: 202,
                body: response.text().await.unwrap_or_default(),
            });
        }
        Ok(())
    }
}
