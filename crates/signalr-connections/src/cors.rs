//! CORS for browser clients with credentials: preflight `OPTIONS` answered 204 with the request's
//! origin, method and headers echoed; actual responses get `Access-Control-Allow-Origin` set to
//! the request's `Origin` (never `*`) and `Access-Control-Allow-Credentials: true`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::options::CorsPolicy;
use crate::responses;

fn allowed_origin(policy: &CorsPolicy, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    policy.allows(origin.to_str().ok()?).then(|| origin.clone())
}

fn add_allow_headers(policy: &CorsPolicy, origin: HeaderValue, headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if policy.allow_credentials {
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The CORS middleware of an endpoint with a policy.
pub(crate) async fn cors(State(policy): State<Arc<CorsPolicy>>, request: Request, next: Next) -> Response {
    let origin = allowed_origin(&policy, request.headers());
    let is_preflight = request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if is_preflight {
        let Some(origin) = origin else {
            // Not an allowed origin: answer without CORS headers, so the browser refuses.
            return responses::empty(StatusCode::NO_CONTENT);
        };
        let mut response = responses::empty(StatusCode::NO_CONTENT);
        let request_headers = request.headers();
        let headers = response.headers_mut();
        add_allow_headers(&policy, origin, headers);
        if let Some(method) = request_headers.get(header::ACCESS_CONTROL_REQUEST_METHOD) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method.clone());
        }
        if let Some(requested) = request_headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
        }
        headers.append(header::VARY, HeaderValue::from_static("Access-Control-Request-Method"));
        headers.append(header::VARY, HeaderValue::from_static("Access-Control-Request-Headers"));
        return response;
    }
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        add_allow_headers(&policy, origin, response.headers_mut());
    }
    response
}
