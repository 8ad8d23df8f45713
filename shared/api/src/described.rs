//! Routes registered from their handlers' `#[utoipa::path]` attributes, so a route cannot exist
//! without its description, and the description made only when `/openapi.json` is asked for.
//!
//! `utoipa-axum`'s `OpenApiRouter` builds every operation's description (parameters, bodies,
//! responses, schemas) as the routes are registered. For 93 operations that was the largest
//! part of the API function's cold start (about 2.5 ms of 15 under `perf`), paid on every
//! start for a document few requests ask for. Here registration reads only each handler's
//! path and methods; the rest waits in a list of functions until [`Description::build`].

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter, Route};
use std::convert::Infallible;
use tower::{Layer, Service};
use utoipa::openapi::path::{HttpMethod, Paths};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi, RefOr};

/// The named schemas an operation refers to, as utoipa collects them.
pub type Schemas = Vec<(String, RefOr<Schema>)>;

/// Adds the operations of one path to the document.
pub type Describe = fn(&mut Paths, &mut Schemas);

/// The handlers of one path, as [`routes!`] makes them.
pub struct PathRoutes<S> {
    pub path: String,
    pub method_router: MethodRouter<S>,
    pub describe: Describe,
}

/// An axum router that keeps how to describe each of its routes. It keeps the routes
/// themselves too, and makes the axum router once, in [`ApiRouter::into_parts`]: merging axum
/// routers inserts every route again into the merged one, and guarding them re-wraps every
/// endpoint: for the API's nested groups, a seventh of its instructions before its first poll.
pub struct ApiRouter<S> {
    routes: Vec<PathRoutes<S>>,
}

impl<S: Clone + Send + Sync + 'static> Default for ApiRouter<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> ApiRouter<S> {
    pub fn new() -> Self {
        Self { routes: Vec::new() }
    }

    pub fn routes(mut self, routes: PathRoutes<S>) -> Self {
        self.routes.push(routes);
        self
    }

    /// [`Router::merge`]: the routes of both; handlers of one path in both share the path.
    pub fn merge(mut self, other: Self) -> Self {
        self.routes.extend(other.routes);
        self
    }

    /// [`Router::route_layer`]: the layer runs for the routes registered so far, around each
    /// of their handlers, as axum's own does.
    pub fn route_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        for routes in &mut self.routes {
            let method_router = std::mem::take(&mut routes.method_router);
            routes.method_router = method_router.layer(layer.clone());
        }
        self
    }

    /// The router to serve, and the description of its routes.
    pub fn into_parts(self) -> (Router<S>, Description) {
        let mut router = Router::new();
        let mut descriptions = Vec::with_capacity(self.routes.len());
        for routes in self.routes {
            router = router.route(&routes.path, routes.method_router);
            descriptions.push(routes.describe);
        }
        (router, Description(descriptions))
    }
}

/// How to describe every registered route.
pub struct Description(Vec<Describe>);

impl Description {
    /// The paths and the schemas they refer to; [`crate::openapi::finish`] completes them.
    pub fn build(&self) -> OpenApi {
        let mut paths = Paths::new();
        let mut schemas = Schemas::new();
        for describe in &self.0 {
            describe(&mut paths, &mut schemas);
        }
        let mut api = OpenApi::new(utoipa::openapi::Info::new("", ""), paths);
        api.components
            .get_or_insert_with(Default::default)
            .schemas
            .extend(schemas);
        api
    }
}

/// Adds one handler's operation (its `#[utoipa::path]` attribute) to the document.
pub fn describe<P>(paths: &mut Paths, schemas: &mut Schemas)
where
    P: utoipa::Path + utoipa::__dev::SchemaReferences + utoipa::__dev::Tags<'static>,
{
    P::schemas(schemas);
    let mut operation = P::operation();
    let tags = P::tags();
    if !tags.is_empty() {
        let operation_tags = operation.tags.get_or_insert_with(Vec::new);
        operation_tags.extend(tags.iter().map(ToString::to_string));
    }
    paths.add_path_operation(P::path(), P::methods(), operation);
}

pub fn method_filter(method: &HttpMethod) -> MethodFilter {
    match method {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Trace => MethodFilter::TRACE,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Options => MethodFilter::OPTIONS,
    }
}

/// `routes!(read, update, remove)`: handlers of one path, each with its `#[utoipa::path]`, as
/// a [`PathRoutes`] for [`ApiRouter::routes`].
macro_rules! routes {
    ($first:ident $(, $rest:ident)* $(,)?) => {
        pastey::paste! {{
            let path = <[<__path_ $first>] as utoipa::Path>::path();
            let mut method_router = axum::routing::MethodRouter::new();
            for method in <[<__path_ $first>] as utoipa::Path>::methods() {
                method_router = method_router.on($crate::described::method_filter(&method), $first);
            }
            $(
                debug_assert_eq!(
                    <[<__path_ $rest>] as utoipa::Path>::path(), path,
                    "routes! takes the handlers of one path"
                );
                for method in <[<__path_ $rest>] as utoipa::Path>::methods() {
                    method_router = method_router.on($crate::described::method_filter(&method), $rest);
                }
            )*
            let describe: $crate::described::Describe = |paths, schemas| {
                $crate::described::describe::<[<__path_ $first>]>(paths, schemas);
                $( $crate::described::describe::<[<__path_ $rest>]>(paths, schemas); )*
            };
            $crate::described::PathRoutes { path, method_router, describe }
        }}
    };
}
pub(crate) use routes;
