//! `POST {base}/negotiate`: version selection and the exact response of .NET's
//! `NegotiateProtocol.WriteResponse` (protocol §1.3–1.4).

use std::fmt::Write;
use std::sync::Arc;

use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use crate::TransportType;
use crate::request::query_value;
use crate::state::Manager;

/// The highest negotiate version this server speaks.
const MAX_NEGOTIATE_VERSION: u32 = 1;

/// Why a negotiate request is refused with an `{"error":…}` body (HTTP 200, like .NET).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NegotiateError {
    /// `negotiateVersion` is not an integer.
    #[error("The client requested a non-integer protocol version.")]
    NonInteger,
    /// `negotiateVersion` (or its absence, 0) is below the minimum.
    #[error("The client requested version '{0}', but the server does not support this version.")]
    Unsupported(i64),
}

/// Picks the version from the `negotiateVersion` query value (case-insensitive key).
pub(crate) fn select_version(requested: Option<&str>, minimum: u32) -> Result<u32, NegotiateError> {
    let requested: i64 = match requested {
        None => 0,
        // .NET `int.TryParse`: optional sign and surrounding white space, 32-bit range.
        Some(text) => text.trim().parse::<i32>().map_err(|_| NegotiateError::NonInteger)?.into(),
    };
    if requested < i64::from(minimum) {
        return Err(NegotiateError::Unsupported(requested));
    }
    Ok(requested.min(i64::from(MAX_NEGOTIATE_VERSION)) as u32)
}

fn json_response(body: String) -> Response {
    let mut response = Response::new(axum::body::Body::from(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn json_string(out: &mut String, value: &str) {
    out.push_str(&serde_json::to_string(value).expect("strings always serialise"));
}

/// The transports of an endpoint as negotiate lists them: fixed order and formats.
fn write_transports(out: &mut String, manager: &Manager) {
    out.push('[');
    let mut first = true;
    for (transport, formats) in [
        (TransportType::WebSockets, r#"["Text","Binary"]"#),
        (TransportType::ServerSentEvents, r#"["Text"]"#),
        (TransportType::LongPolling, r#"["Text","Binary"]"#),
    ] {
        if !manager.options.is_enabled(transport) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, r#"{{"transport":"{}","transferFormats":{}}}"#, transport.as_str(), formats);
    }
    out.push(']');
}

/// Handles a negotiate request whose caller is already authenticated.
pub(crate) fn negotiate(manager: &Arc<Manager>, query: &[(String, String)], user: Option<crate::User>) -> Response {
    let version = match select_version(query_value(query, "negotiateVersion"), manager.options.minimum_negotiate_version) {
        Ok(version) => version,
        Err(error) => {
            let mut body = String::from(r#"{"error":"#);
            json_string(&mut body, &error.to_string());
            body.push('}');
            return json_response(body);
        }
    };
    let asked_stateful = query_value(query, "useStatefulReconnect").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let stateful = asked_stateful && manager.options.allow_stateful_reconnects;
    let conn = match manager.create(version, stateful, false, user) {
        Ok(conn) => conn,
        Err(limit) => {
            let status = match limit {
                crate::state::LimitReached::Node => StatusCode::SERVICE_UNAVAILABLE,
                crate::state::LimitReached::User => StatusCode::TOO_MANY_REQUESTS,
            };
            return crate::responses::text(status, limit.to_string());
        }
    };

    let mut body = String::with_capacity(320);
    body.push('{');
    if stateful {
        body.push_str(r#""useStatefulReconnect":true,"#);
    }
    let _ = write!(body, r#""negotiateVersion":{version},"connectionId":"{}","#, conn.id.as_str());
    if version > 0 {
        let _ = write!(body, r#""connectionToken":"{}","#, conn.token.as_str());
    }
    body.push_str(r#""availableTransports":"#);
    write_transports(&mut body, manager);
    body.push('}');
    json_response(body)
}

/// Negotiate with a method other than POST.
pub(crate) fn method_not_allowed() -> Response {
    crate::responses::text(StatusCode::METHOD_NOT_ALLOWED, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_versions_like_dotnet() {
        assert_eq!(select_version(None, 0), Ok(0));
        assert_eq!(select_version(Some("1"), 0), Ok(1));
        assert_eq!(select_version(Some("7"), 0), Ok(1));
        assert_eq!(select_version(Some(" 1 "), 0), Ok(1));
        assert_eq!(select_version(Some("1.0"), 0), Err(NegotiateError::NonInteger));
        assert_eq!(select_version(Some("abc"), 0), Err(NegotiateError::NonInteger));
        assert_eq!(select_version(Some("99999999999"), 0), Err(NegotiateError::NonInteger));
        assert_eq!(select_version(Some("-1"), 0), Err(NegotiateError::Unsupported(-1)));
        assert_eq!(select_version(None, 1), Err(NegotiateError::Unsupported(0)));
        assert_eq!(
            NegotiateError::Unsupported(0).to_string(),
            "The client requested version '0', but the server does not support this version."
        );
    }
}
