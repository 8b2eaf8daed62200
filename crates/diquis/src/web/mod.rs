//! HTTP: the router of a process ([`router`]), the envelope ([`envelope`]), pages ([`pages`]),
//! embedded assets ([`assets`]), HTML helpers ([`html`]) and the dashboard guard ([`dashboard`]).

pub mod account;
pub mod assets;
pub mod dashboard;
pub mod envelope;
pub mod form_errors;
pub mod forms;
pub mod html;
pub mod pages;
pub mod paging;
pub mod security_headers;
pub mod users_page;

use axum::Router;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::auth::session::renew_session;
use crate::state::AppState;
use crate::{auth, notifications, ops, tenants};

/// The whole application router of a process: what its role serves, plus the hub (`hub`), health,
/// metrics, sign-in and assets everywhere. Paths match case-insensitively and with a trailing
/// slash, like ASP.NET Core routing.
pub fn router(state: AppState, hub: Router) -> Router {
    let sign_in_limit = axum::middleware::from_fn_with_state(state.clone(), crate::security::limit_by_address);
    let mut app = Router::new()
        .route("/health/live", get(ops::health::live))
        .route("/health/ready", get(ops::health::ready))
        .route("/metrics", get(ops::metrics::render))
        .route("/login", get(pages::login_form).post(pages::login).route_layer(sign_in_limit.clone()))
        .route("/logout", post(pages::logout))
        .route("/reset-password", get(account::reset_form).post(account::reset).route_layer(sign_in_limit.clone()))
        .route("/account/password", get(account::password_form).post(account::change_password))
        .route("/api/tokens", post(auth::api::sign_in).route_layer(sign_in_limit.clone()))
        .route("/api/tokens/refresh", post(auth::api::refresh).route_layer(sign_in_limit))
        .merge(assets::router());
    if state.role.serves_web() {
        app = app
            .route("/", get(pages::index))
            .route("/tenants", get(pages::tenants).post(pages::create))
            .route("/tenants/{id}/row", get(pages::tenant_row_fragment))
            .route("/tenants/{id}/edit", get(pages::edit_form).post(pages::edit))
            .route("/seed-demo", get(pages::seed_demo))
            .route("/users", get(users_page::list).post(users_page::add))
            .route("/users/{id}/{action}", post(users_page::act))
            .route("/api/tenants", get(tenants::api::list).post(tenants::api::create))
            .route("/api/tenants/{id}", get(tenants::api::get).put(tenants::api::update))
            .route("/api/notifications", get(notifications::api::missed))
            .merge(auth::users_api::routes());
    } else {
        app = app.route("/", get(|| async { axum::response::Redirect::to("/jobs") }));
    }
    // Every node serves the dashboard (it reads the shared job storage), as Hangfire's runs
    // inside the web application: the header's link works wherever the page came from.
    // A nested service (not a nested router's fallback) is a route to the case-insensitive path
    // matching below, so `/jobs/` and `/Jobs` find it too.
    app = app.nest_service("/jobs", dashboard::guarded(state.clone()).with_state(state.clone()));
    let app = app.layer(axum::middleware::from_fn_with_state(state.clone(), renew_session)).with_state(state.clone());
    // The hub shares the session renewal, so an expired access cookie is renewed on negotiate.
    // Revoked tokens are refused before the hub's (synchronous) authenticator runs.
    let hub = hub
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::revocation::hub_gate))
        .layer(axum::middleware::from_fn_with_state(state.clone(), renew_session));
    let mut app = signalr_connections::case_insensitive_paths(app.merge(hub));
    if let Some(cors) = ops::cors::layer(&state.settings.cors_origins) {
        app = app.layer(cors);
    }
    // Outermost: every layer and handler sees the client as trusted proxies tell it.
    app.layer(axum::middleware::from_fn(security_headers::add))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::security::forwarded::resolve_client))
}
