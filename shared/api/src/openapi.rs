//! The OpenAPI 3.1 description of the API, generated from the handlers' `#[utoipa::path]`
//! attributes (see `crate::described`: a route cannot exist without its description), and
//! served at `/openapi.json`.

use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ContentBuilder, OpenApi, RefOr, ResponseBuilder, Tag, path::Operation, schema::Schema,
};
use utoipa::{PartialSchema, ToSchema};

use crate::error::FieldError;

/// The security scheme of every route that needs an access token.
pub const BEARER: &str = "bearer";
/// The security scheme of `POST /v1/ingest`: `Authorization: Device {uid}.{secret}`.
pub const DEVICE_TOKEN: &str = "device_token";

/// One page of a list: `next` is the cursor of the following page, `null` on the last.
#[derive(serde::Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass it as `cursor` to get the next page.
    pub next: Option<String>,
}

/// An error, as RFC 9457 problem details (`application/problem+json`).
#[derive(serde::Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: `title` and `status` say what kind of error it is.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong and what to change.
    pub detail: String,
    /// Field-level messages, each naming the field by a JSON pointer into the request.
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

/// Completes the description the handlers' attributes give: title and version, security
/// schemes, a problem-details `default` response on every operation, and the tags.
pub fn finish(mut api: OpenApi) -> OpenApi {
    api.info.title = "IoT platform API".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.license = Some(utoipa::openapi::License::new(env!("CARGO_PKG_LICENSE")));
    api.info.description = Some(
        "Devices, products and parser scripts, alarm rules and alarms, telemetry, statistics, \
         notifications, users, roles, departments and audit. Sign in at `POST /v1/auth/login` \
         and send the access token as `Authorization: Bearer {token}`. Errors are RFC 9457 \
         problem details; lists page with `limit` and `cursor`."
            .into(),
    );
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("The access token from `POST /v1/auth/login`."))
                .build(),
        ),
    );
    components.add_security_scheme(
        DEVICE_TOKEN,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Authorization",
            "`Device {uid}.{secret}`, with the token from `POST /v1/devices/{uid}/token`.",
        ))),
    );
    let problem_name = <Problem as ToSchema>::name().into_owned();
    let mut schemas: Vec<(String, RefOr<Schema>)> = vec![(problem_name.clone(), Problem::schema())];
    <Problem as ToSchema>::schemas(&mut schemas);
    components.schemas.extend(schemas);
    let problem = ResponseBuilder::new()
        .description("An error, as problem details that say what to fix.")
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name(problem_name)))
                .build(),
        )
        .build();

    let mut tags = std::collections::BTreeSet::new();
    for item in api.paths.paths.values_mut() {
        for operation in operations(item) {
            operation
                .responses
                .responses
                .entry("default".into())
                .or_insert_with(|| problem.clone().into());
            // An access token unless the attribute says otherwise (`security(())`).
            operation.security.get_or_insert_with(|| {
                vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]
            });
            tags.extend(operation.tags.iter().flatten().cloned());
        }
    }
    api.tags = Some(tags.into_iter().map(Tag::new).collect());
    api
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}
