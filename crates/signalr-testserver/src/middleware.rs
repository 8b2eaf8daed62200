//! The functional-test server's HTTP middleware (FunctionalTests/Startup.cs): CORS for any
//! origin with credentials, the negotiate cookies, and the redirect / bad-negotiate paths.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

/// CORS as the test server configures it: any origin is echoed with credentials; preflights
/// echo the requested method and headers and answer 204.
pub async fn cors(request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let preflight = request.method() == http::Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut response = Response::builder().status(StatusCode::NO_CONTENT).body(Body::empty()).unwrap_or_default();
        let headers = response.headers_mut();
        if let Some(origin) = origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        if let Some(method) = request.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method.clone());
        }
        if let Some(requested) = request.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
        }
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        return response;
    }
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// Adds `testCookie`, `testCookie2` and an already-expired `expiredCookie` to every response
/// whose path contains `/negotiate`.
pub async fn negotiate_cookies(request: Request, next: Next) -> Response {
    let is_negotiate = request.uri().path().to_ascii_lowercase().contains("/negotiate");
    let secure = request.uri().scheme_str() == Some("https");
    let mut response = next.run(request).await;
    if is_negotiate {
        let extra = if secure { "; SameSite=None; Secure; Partitioned" } else { "" };
        let headers = response.headers_mut();
        for cookie in [
            format!("testCookie=testValue; path=/{extra}"),
            format!("testCookie2=testValue2; path=/{extra}"),
            format!("expiredCookie=doesntmatter; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/{extra}"),
        ] {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
    }
    response
}

/// The global redirect counter of `/redirect`.
#[derive(Debug, Default)]
pub struct RedirectCounter(AtomicU64);

/// `/redirect…` (any method and subpath): `{ "url": "<baseUrl>/testHub?numRedirects=<n>" }`;
/// `/bad-negotiate…`: 400 `Some response from server`; `/echoredirect…`: 307 to the same path
/// with `echoredirect` replaced by `echo`, query kept.
pub async fn special_paths(State(counter): State<Arc<RedirectCounter>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_ascii_lowercase();
    if path.starts_with("/redirect") {
        let base_url = query_param(request.uri().query().unwrap_or(""), "baseUrl").unwrap_or_default();
        let n = counter.0.fetch_add(1, Ordering::SeqCst) + 1;
        let body = format!("{{ \"url\": \"{base_url}/testHub?numRedirects={n}\" }}");
        return Response::builder().status(StatusCode::OK).body(Body::from(body)).unwrap_or_default();
    }
    if path.starts_with("/bad-negotiate") {
        return Response::builder().status(StatusCode::BAD_REQUEST).body(Body::from("Some response from server")).unwrap_or_default();
    }
    if path.starts_with("/echoredirect") {
        let original = request.uri().path();
        let target_path = format!("/echo{}", &original["/echoredirect".len()..]);
        let location = match request.uri().query() {
            Some(query) => format!("{target_path}?{query}"),
            None => target_path,
        };
        let mut response = Response::builder().status(StatusCode::TEMPORARY_REDIRECT).body(Body::empty()).unwrap_or_default();
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return response;
    }
    next.run(request).await
}

/// A decoded query parameter (name compared case-insensitively, like ASP.NET).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_values() {
        assert_eq!(query_param("a=1&baseUrl=http%3A%2F%2Fh%3A5", "baseurl").as_deref(), Some("http://h:5"));
        assert_eq!(query_param("x=%zz%", "x").as_deref(), Some("%zz%"));
        assert_eq!(query_param("x=1", "y"), None);
    }
}
