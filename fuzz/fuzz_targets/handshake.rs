//! Handshake request (server side) and response (client side): incremental parsing of the first
//! record-separated JSON message; a parsed handshake written again parses to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use signalr_protocol::{HandshakeRequest, HandshakeResponse};

fuzz_target!(|data: &[u8]| {
    let (split, input) = match data.split_first() {
        Some((split, input)) => (usize::from(*split), input),
        None => return,
    };
    // Arrives in two reads, split where the first byte says.
    let split = split.min(input.len());
    for max_size in [input.len().max(1), 1 << 15] {
        let mut buf = BytesMut::from(&input[..split]);
        let mut request = HandshakeRequest::parse(&mut buf, max_size);
        if matches!(request, Ok(None)) {
            buf.extend_from_slice(&input[split..]);
            request = HandshakeRequest::parse(&mut buf, max_size);
        }
        if let Ok(Some(request)) = request {
            let mut out = Vec::new();
            request.write(&mut out);
            let mut again = BytesMut::from(&out[..]);
            assert_eq!(HandshakeRequest::parse(&mut again, usize::MAX).expect("rewritten request parses"), Some(request));
            assert!(again.is_empty());
        }

        let mut buf = BytesMut::from(input);
        if let Ok(Some(response)) = HandshakeResponse::parse(&mut buf, max_size) {
            let mut out = Vec::new();
            response.write(&mut out);
            let mut again = BytesMut::from(&out[..]);
            assert_eq!(HandshakeResponse::parse(&mut again, usize::MAX).expect("rewritten response parses"), Some(response));
        }
    }
    let _ = HandshakeRequest::parse_payload(input);
    let _ = HandshakeResponse::parse_payload(input);
});
