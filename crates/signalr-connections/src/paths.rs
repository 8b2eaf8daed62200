//! ASP.NET-style path matching for axum routers: case-insensitive, trailing slash allowed.
//!
//! axum matches paths exactly; ASP.NET routing ignores case and a trailing slash, and the
//! official client relies on it (the JS test server redirects to `/testHub` while the hub is at
//! `/testhub`, and `/hub/` must act like `/hub`). A request whose path has an upper-case letter
//! or a trailing slash is first *probed* against the router: the probe is marked so that a matched
//! route answers without running its handler. The first candidate that matches is served — the
//! path as sent, without the trailing slash, lower-cased, or both. Paths that are already lower
//! case with no trailing slash go straight through at no cost.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::uri::{PathAndQuery, Uri};
use tower::ServiceExt;

/// Marks a probe request: the matched route answers at once, without running its handler.
#[derive(Clone, Copy)]
struct Probe;

/// Marks the response to a probe whose path matched a route.
#[derive(Clone, Copy)]
struct Matched;

async fn answer_probe(request: Request, next: Next) -> Response {
    if request.extensions().get::<Probe>().is_some() {
        let mut response = StatusCode::NO_CONTENT.into_response();
        response.extensions_mut().insert(Matched);
        return response;
    }
    next.run(request).await
}

/// Wraps `router` so that a request path matches its routes case-insensitively and with or
/// without a trailing slash, like ASP.NET routing. Register routes in lower case: a path that
/// matches no route as sent is retried lower-cased (route parameters then arrive lower-cased too,
/// so a path with a case-sensitive parameter should be requested in its exact case).
pub fn case_insensitive_paths(router: Router) -> Router {
    if !router.has_routes() {
        return router;
    }
    let router = router.route_layer(axum::middleware::from_fn(answer_probe));
    Router::new().fallback(move |request: Request| {
        let router = router.clone();
        async move { route_case_insensitively(router, request).await }
    })
}

fn needs_probe(path: &str) -> bool {
    (path.len() > 1 && path.ends_with('/')) || path.bytes().any(|b| b.is_ascii_uppercase())
}

fn candidates(path: &str) -> Vec<String> {
    let trimmed = {
        let t = path.trim_end_matches('/');
        if t.is_empty() { "/" } else { t }
    };
    let mut list: Vec<String> = Vec::with_capacity(4);
    for candidate in [path.to_owned(), trimmed.to_owned(), path.to_ascii_lowercase(), trimmed.to_ascii_lowercase()] {
        if !list.contains(&candidate) {
            list.push(candidate);
        }
    }
    list
}

fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

async fn probe_matches(router: &Router, method: &http::Method, uri: Uri) -> bool {
    let mut probe = Request::new(Body::empty());
    *probe.method_mut() = method.clone();
    *probe.uri_mut() = uri;
    probe.extensions_mut().insert(Probe);
    match router.clone().oneshot(probe).await {
        Ok(response) => response.extensions().get::<Matched>().is_some() || response.status() == StatusCode::METHOD_NOT_ALLOWED,
        Err(never) => match never {},
    }
}

async fn route_case_insensitively(router: Router, mut request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if needs_probe(&path) {
        for candidate in candidates(&path) {
            let Some(uri) = with_path(request.uri(), &candidate) else {
                continue;
            };
            if probe_matches(&router, request.method(), uri.clone()).await {
                *request.uri_mut() = uri;
                break;
            }
        }
    }
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_candidates_in_order() {
        assert_eq!(candidates("/Hub/"), vec!["/Hub/", "/Hub", "/hub/", "/hub"]);
        assert_eq!(candidates("/hub/"), vec!["/hub/", "/hub"]);
        assert!(!needs_probe("/hub"));
        assert!(needs_probe("/hub/"));
        assert!(!needs_probe("/"));
    }
}
