//! The handshake request and response (signalr-protocol.md §3).

use bytes::BytesMut;
use signalr_protocol::{HandshakeRequest, HandshakeResponse, ProtocolError};

fn parse(bytes: &[u8]) -> Result<Option<HandshakeRequest>, ProtocolError> {
    let mut buf = BytesMut::from(bytes);
    HandshakeRequest::parse(&mut buf, 32 * 1024)
}

fn request(protocol: &str, version: u32) -> HandshakeRequest {
    HandshakeRequest { protocol: protocol.into(), version }
}

#[test]
fn parses_the_requests_clients_send() {
    assert_eq!(parse(b"{\"protocol\":\"json\",\"version\":1}\x1e").unwrap(), Some(request("json", 1)));
    assert_eq!(parse(b"{\"protocol\":\"messagepack\",\"version\":2}\x1e").unwrap(), Some(request("messagepack", 2)));
    // Property order is free and unknown properties are skipped.
    assert_eq!(parse(b" {\"version\":1, \"extra\":{\"a\":[1]}, \"protocol\":\"json\"} \x1e").unwrap(), Some(request("json", 1)));
}

#[test]
fn consumes_up_to_the_separator_and_keeps_the_hub_data() {
    let mut buf = BytesMut::from(&b"{\"protocol\":\"json\",\"version\":1}\x1e{\"type\":6}\x1e"[..]);
    assert_eq!(HandshakeRequest::parse(&mut buf, 1024).unwrap(), Some(request("json", 1)));
    assert_eq!(&buf[..], b"{\"type\":6}\x1e");
}

#[test]
fn arrives_in_pieces() {
    let bytes = b"{\"protocol\":\"messagepack\",\"version\":1}\x1e\x02\x91\x06";
    let mut buf = BytesMut::new();
    let mut parsed = None;
    for (index, &byte) in bytes.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        if parsed.is_none() {
            parsed = HandshakeRequest::parse(&mut buf, 1024).unwrap();
            assert_eq!(parsed.is_some(), index == 38, "complete exactly at the separator");
        }
    }
    assert_eq!(parsed, Some(request("messagepack", 1)));
    assert_eq!(&buf[..], b"\x02\x91\x06");
}

#[test]
fn bad_requests_are_errors() {
    assert!(matches!(parse(b"{\"protocol\":\"json\"}\x1e"), Err(ProtocolError::MissingField("version"))));
    assert!(matches!(parse(b"{\"version\":1}\x1e"), Err(ProtocolError::MissingField("protocol"))));
    assert!(matches!(parse(b"{\"protocol\":1,\"version\":1}\x1e"), Err(ProtocolError::WrongType { field: "protocol", .. })));
    assert!(matches!(parse(b"{\"protocol\":\"json\",\"version\":\"1\"}\x1e"), Err(ProtocolError::WrongType { field: "version", .. })));
    assert!(matches!(parse(b"{\"protocol\":\"json\",\"version\":-1}\x1e"), Err(ProtocolError::WrongType { field: "version", .. })));
    assert!(matches!(parse(b"{\"protocol\":\"json\",\"version\":1\x1e"), Err(ProtocolError::Json(_))));
    assert!(matches!(parse(b"[\"json\",1]\x1e"), Err(ProtocolError::WrongType { .. })));
    assert!(matches!(parse(b"\x1e"), Err(ProtocolError::Json(_))));
    assert!(matches!(parse(b"\xff\xfe\x1e"), Err(ProtocolError::Json(_))));
}

#[test]
fn oversized_requests_are_errors_without_a_separator() {
    let mut buf = BytesMut::from(&[b' '; 100][..]);
    assert!(matches!(HandshakeRequest::parse(&mut buf, 64), Err(ProtocolError::MessageTooLarge { max: 64 })));
    let mut buf = BytesMut::from(&[b' '; 64][..]);
    assert_eq!(HandshakeRequest::parse(&mut buf, 64).unwrap(), None);
}

#[test]
fn writes_requests_and_responses() {
    let mut out = Vec::new();
    request("json", 1).write(&mut out);
    assert_eq!(out, b"{\"protocol\":\"json\",\"version\":1}\x1e");
    let mut out = Vec::new();
    HandshakeResponse::write_success(&mut out);
    assert_eq!(out, b"{}\x1e");
    let mut out = Vec::new();
    HandshakeResponse::write_error("The protocol 'xml' is not supported.", &mut out);
    assert_eq!(out, b"{\"error\":\"The protocol 'xml' is not supported.\"}\x1e");
    let mut out = Vec::new();
    HandshakeResponse::write_error("quote \" and \\", &mut out);
    assert_eq!(out, b"{\"error\":\"quote \\\" and \\\\\"}\x1e");
}

#[test]
fn parses_responses_like_a_client() {
    let mut buf = BytesMut::from(&b"{}\x1e{\"type\":6}\x1e"[..]);
    assert_eq!(HandshakeResponse::parse(&mut buf, 1024).unwrap(), Some(HandshakeResponse { error: None }));
    assert_eq!(&buf[..], b"{\"type\":6}\x1e");
    let mut buf = BytesMut::from(&b"{\"error\":\"Handshake was canceled.\"}\x1e"[..]);
    assert_eq!(
        HandshakeResponse::parse(&mut buf, 1024).unwrap(),
        Some(HandshakeResponse { error: Some("Handshake was canceled.".into()) })
    );
    let mut buf = BytesMut::from(&b"{\"minorVersion\":1}\x1e"[..]);
    assert_eq!(HandshakeResponse::parse(&mut buf, 1024).unwrap(), Some(HandshakeResponse { error: None }));
    let mut buf = BytesMut::from(&b"{}"[..]);
    assert_eq!(HandshakeResponse::parse(&mut buf, 1024).unwrap(), None);
    let mut buf = BytesMut::from(&b"{\"type\":6}\x1e"[..]);
    let error = HandshakeResponse::parse(&mut buf, 1024).unwrap_err();
    assert!(error.to_string().contains("Expected a handshake response from the server."));
    let mut buf = BytesMut::from(&b"{\"error\":5}\x1e"[..]);
    assert!(HandshakeResponse::parse(&mut buf, 1024).is_err());
    for response in [HandshakeResponse { error: None }, HandshakeResponse { error: Some("x".into()) }] {
        let mut out = Vec::new();
        response.write(&mut out);
        let mut buf = BytesMut::from(&out[..]);
        assert_eq!(HandshakeResponse::parse(&mut buf, 1024).unwrap(), Some(response));
    }
}
