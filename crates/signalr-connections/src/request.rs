//! Reading what the connection layer needs from an HTTP request: query pairs, cookies, the bearer
//! token, and the [`RequestInfo`] handed to applications.

use http::HeaderMap;
use http::request::Parts;

use crate::RequestInfo;

/// Decodes a query string into pairs (`+` is a space, `%XX` escapes; invalid escapes are kept).
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    // application/x-www-form-urlencoded: '+' is a space, a bad escape stays as written, bytes
    // that are not UTF-8 once decoded become U+FFFD.
    form_urlencoded::parse(query.as_bytes()).map(|(key, value)| (key.into_owned(), value.into_owned())).collect()
}

/// The first value of query key `name`, compared case-insensitively like ASP.NET.
pub(crate) fn query_value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
}

/// Cookies of every `Cookie` header, in order.
pub(crate) fn parse_cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|cookie| {
            let (name, value) = cookie.trim().split_once('=')?;
            let value = value.trim();
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            (!name.is_empty()).then(|| (name.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

/// The bearer token from `Authorization: Bearer …`, else the `access_token` query parameter.
pub(crate) fn bearer_token(request: &RequestInfo) -> Option<String> {
    let from_header = request
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
        })
        .filter(|token| !token.is_empty());
    from_header.or_else(|| query_value(&request.query, "access_token").filter(|t| !t.is_empty()).map(str::to_owned))
}

/// A copy of `headers` whose values live in one small buffer of their own.
///
/// hyper's header values are slices of the connection's read buffer (8 KiB or more); keeping
/// them for the life of a connection would keep that whole buffer alive.
///
/// The WebSocket handshake headers (`Sec-WebSocket-Key`, `-Version`, `-Extensions`) are left
/// out: they mean nothing once the upgrade is answered, and every idle connection would keep
/// them.
fn compact_headers(headers: &HeaderMap) -> HeaderMap {
    let kept = || headers.iter().filter(|(name, _)| !is_handshake_only(name));
    let total: usize = kept().map(|(_, v)| v.len()).sum();
    let mut buffer = bytes::BytesMut::with_capacity(total);
    for (_, value) in kept() {
        buffer.extend_from_slice(value.as_bytes());
    }
    let buffer = buffer.freeze();
    let mut compact = HeaderMap::with_capacity(kept().count());
    let mut offset = 0;
    for (name, value) in kept() {
        let end = offset + value.len();
        let copied = http::HeaderValue::from_maybe_shared(buffer.slice(offset..end))
            .map(|mut copied| {
                copied.set_sensitive(value.is_sensitive());
                copied
            })
            .unwrap_or_else(|_| value.clone());
        compact.append(name.clone(), copied);
        offset = end;
    }
    compact
}

/// Headers used only by the WebSocket handshake itself.
fn is_handshake_only(name: &http::HeaderName) -> bool {
    name == http::header::SEC_WEBSOCKET_KEY || name == http::header::SEC_WEBSOCKET_VERSION || name == http::header::SEC_WEBSOCKET_EXTENSIONS
}

impl RequestInfo {
    /// What a connection keeps of its request for its whole life: headers, then cookies, then
    /// query pairs, each kept whole while their total size stays within `budget` bytes, so a
    /// client padding its request cannot make every connection hold hundreds of kilobytes.
    /// Credentials are left out: the `Authorization` header, the `access_token` query value
    /// (authentication already read them) and the `Cookie` header (kept parsed as cookies).
    pub(crate) fn retained(self, budget: usize) -> RequestInfo {
        let mut left = budget;
        let mut fits = |size: usize| {
            if size <= left {
                left -= size;
                true
            } else {
                false
            }
        };
        let kept: Vec<_> = self
            .headers
            .iter()
            .filter(|(name, _)| **name != http::header::AUTHORIZATION && **name != http::header::COOKIE)
            .filter(|(name, value)| fits(name.as_str().len() + value.len()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let mut headers = HeaderMap::with_capacity(kept.len());
        for (name, value) in kept {
            headers.append(name, value);
        }
        let cookies = self.cookies.into_iter().filter(|(name, value)| fits(name.len() + value.len())).collect();
        let query = self
            .query
            .into_iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("access_token"))
            .filter(|(name, value)| fits(name.len() + value.len()))
            .collect();
        let path = if fits(self.path.len()) { self.path } else { String::new() };
        // One small buffer for the kept header values, not slices of the full copy.
        let headers = compact_headers(&headers);
        RequestInfo { headers, query, cookies, path }
    }
}

/// Builds the [`RequestInfo`] of a request (the headers are copied, compactly).
pub(crate) fn request_info(parts: &mut Parts) -> RequestInfo {
    let headers = compact_headers(&parts.headers);
    RequestInfo {
        query: parts.uri.query().map(parse_query).unwrap_or_default(),
        cookies: parse_cookies(&headers),
        // Under `Router::nest` the URI lost its prefix; the original one has the full path.
        path: parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| parts.uri.path().to_owned(), |original| original.0.path().to_owned()),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_pairs() {
        let pairs = parse_query("a=1&b=x%20y+z&c&d=%zz&e=%41%");
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), String::new()),
                ("d".into(), "%zz".into()),
                ("e".into(), "A%".into()),
            ]
        );
        assert_eq!(query_value(&pairs, "A"), Some("1"));
    }

    #[test]
    fn compacts_headers_keeping_order_and_repeats() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", "1".parse().unwrap());
        headers.append("x-a", "2".parse().unwrap());
        headers.insert("x-b", "three".parse().unwrap());
        let compact = compact_headers(&headers);
        assert_eq!(compact.get_all("x-a").iter().collect::<Vec<_>>(), vec!["1", "2"]);
        assert_eq!(compact["x-b"], "three");
        assert_eq!(compact.len(), 3);
    }

    #[test]
    fn drops_websocket_handshake_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap());
        headers.insert(http::header::SEC_WEBSOCKET_VERSION, "13".parse().unwrap());
        headers.insert(http::header::SEC_WEBSOCKET_EXTENSIONS, "permessage-deflate".parse().unwrap());
        headers.insert(http::header::HOST, "example".parse().unwrap());
        headers.insert("x-custom", "kept".parse().unwrap());
        let compact = compact_headers(&headers);
        assert_eq!(compact.len(), 2);
        assert_eq!(compact[http::header::HOST], "example");
        assert_eq!(compact["x-custom"], "kept");
        assert!(!compact.contains_key(http::header::SEC_WEBSOCKET_KEY));
    }

    #[test]
    fn retains_a_bounded_request_without_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert("x-small", "kept".parse().unwrap());
        headers.insert("x-padding", "p".repeat(300_000).parse().unwrap());
        headers.insert(http::header::AUTHORIZATION, "Bearer secret".parse().unwrap());
        headers.insert(http::header::COOKIE, "a=1".parse().unwrap());
        let info = RequestInfo {
            headers,
            query: vec![("access_token".into(), "secret".into()), ("id".into(), "abc".into()), ("big".into(), "q".repeat(10_000))],
            cookies: vec![("a".into(), "1".into()), ("huge".into(), "c".repeat(10_000))],
            path: "/hub".into(),
        };
        let kept = info.retained(4096);
        assert_eq!(kept.headers.len(), 1);
        assert_eq!(kept.headers["x-small"], "kept");
        assert_eq!(kept.cookies, vec![("a".to_owned(), "1".to_owned())]);
        assert_eq!(kept.query, vec![("id".to_owned(), "abc".to_owned())]);
        assert_eq!(kept.path, "/hub");
    }

    #[test]
    fn parses_cookies_and_bearer() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, "testCookie=testValue; other=\"q\"".parse().unwrap());
        headers.insert(http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        let cookies = parse_cookies(&headers);
        assert_eq!(cookies, vec![("testCookie".into(), "testValue".into()), ("other".into(), "q".into())]);
        let info = RequestInfo { headers, query: vec![("access_token".into(), "q".into())], ..Default::default() };
        assert_eq!(bearer_token(&info).as_deref(), Some("abc"));
        let info = RequestInfo { query: vec![("access_token".into(), "q".into())], ..Default::default() };
        assert_eq!(bearer_token(&info).as_deref(), Some("q"));
    }
}
