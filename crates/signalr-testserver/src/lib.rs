//! The functional-test server of the official SignalR clients (ASP.NET Core's
//! `FunctionalTests/Startup.cs`), on the `signalr` crate: every endpoint and `TestHub` method of
//! the protocol reference §7.1, plus multi-client helpers. [`build_app`] builds the whole
//! application so that tests can run it in-process; the binary serves it.

#![warn(missing_docs)]

pub mod auth;
pub mod echo;
pub mod middleware;
pub mod test_hub;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use http::StatusCode;
use signalr::{HubContext, HubLifetimeManager, HubOptions, HubService};
use signalr_connections::{HttpConnectionOptions, TransportType, case_insensitive_paths};

pub use auth::JwtAuthenticator;

/// What the application is built from.
#[derive(Clone, Default)]
pub struct AppArgs {
    /// The lifetime manager of `TestHub` (e.g. a Redis backplane); in-process when `None`.
    pub test_hub_lifetime_manager: Option<Arc<dyn HubLifetimeManager>>,
    /// Hub options to start from (detailed errors are always switched on); defaults when `None`.
    pub hub_options: Option<HubOptions>,
}

impl std::fmt::Debug for AppArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppArgs")
            .field("test_hub_lifetime_manager", &self.test_hub_lifetime_manager.is_some())
            .field("hub_options", &self.hub_options)
            .finish()
    }
}

/// The built application and handles tests may use.
#[derive(Debug, Clone)]
pub struct App {
    /// The router to serve.
    pub router: Router,
    /// `IHubContext<TestHub>`.
    pub test_hub: HubContext,
}

/// Builds the test server's router (see [`build`] for the hub context too).
pub fn build_app(args: AppArgs) -> Router {
    build(args).router
}

/// Builds the test server's router and returns the `TestHub` context with it.
pub fn build(args: AppArgs) -> App {
    let mut options = args.hub_options.unwrap_or_default().enable_detailed_errors(true);
    if let Some(manager) = args.test_hub_lifetime_manager {
        options = options.lifetime_manager(manager);
    }
    let test_hub = HubService::new(test_hub::test_hub(), options.clone());
    let mut authorized_options = options;
    authorized_options.lifetime_manager = None;
    let authorized_hub = HubService::new(test_hub::authorized_hub(), authorized_options);
    let jwt = Arc::new(JwtAuthenticator::new());
    let context = test_hub.context();

    let optional_user = Arc::new(auth::OptionalJwtAuthenticator(jwt.clone()));
    let all = HttpConnectionOptions::default().allow_stateful_reconnects(true).authenticator(optional_user.clone());
    let no_websockets = HttpConnectionOptions::default()
        .authenticator(optional_user)
        .transports([TransportType::ServerSentEvents, TransportType::LongPolling]);
    let authorized = HttpConnectionOptions::default().authenticator(jwt.clone()).require_authentication(true);

    let routes = Router::new()
        .merge(test_hub.router("/testhub", all))
        .merge(test_hub.router("/testhub-nowebsockets", no_websockets))
        .merge(authorized_hub.router("/authorizedhub", authorized))
        .nest("/echo", signalr_connections::endpoint(HttpConnectionOptions::default(), Arc::new(echo::EchoConnectionHandler)))
        .route("/generatejwttoken", get(generate_jwt_token).with_state(jwt))
        .route("/clientresult/{connection_id}", get(client_result).with_state(context.clone()));

    let router = case_insensitive_paths(routes)
        .layer(axum::middleware::from_fn_with_state(Arc::new(middleware::RedirectCounter::default()), middleware::special_paths))
        .layer(axum::middleware::from_fn(middleware::negotiate_cookies))
        .layer(axum::middleware::from_fn(middleware::cors));
    App { router, test_hub: context }
}

async fn generate_jwt_token(State(jwt): State<Arc<JwtAuthenticator>>) -> (StatusCode, String) {
    match jwt.generate_token() {
        Ok(token) => (StatusCode::OK, token),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// `InvokeAsync<int>("Result")` on the connection; the int as text, or the error message.
async fn client_result(State(context): State<HubContext>, Path(connection_id): Path<String>) -> String {
    match context.clients().client(connection_id).invoke::<i32, _>("Result", ()).await {
        Ok(value) => value.to_string(),
        Err(error) => error.message().to_owned(),
    }
}
