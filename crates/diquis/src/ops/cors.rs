//! CORS from `Cors:AllowedOrigins`, with credentials (the seed's `AllowCredentials()` policy).

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// A layer allowing `origins` with credentials, any method used by the API and the hub, and the
/// headers the SignalR client and the UI send. `None` when no origin is configured.
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let values: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()).collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(values))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-requested-with"),
                HeaderName::from_static("x-signalr-user-agent"),
                HeaderName::from_static("x-csrf-token"),
            ]),
    )
}
