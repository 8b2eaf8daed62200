//! Inputs found by the coverage-guided fuzz targets in `fuzz/` (docs/fuzzing.md), each kept as a
//! test of the fix.

mod common;

use common::{parse_one, write};
use signalr_protocol::{HubMessage, MessagePackHubProtocol};

const MSGPACK: MessagePackHubProtocol = MessagePackHubProtocol;

/// hub_msgpack: a `str` argument whose bytes are not UTF-8 was written back as `bin` (rmpv's
/// writer does that), so a relayed argument changed type. It is written back as the same string.
#[test]
fn a_string_that_is_not_utf8_is_written_back_as_the_same_string() {
    // [1, {}, nil, "TenantCr@ated", [str(a3 31)], []]
    let input = [
        0x17, 0x96, 0x01, 0x80, 0xc0, 0xad, b'T', b'e', b'n', b'a', b'n', b't', b'C', b'r', b'@', b'a', b't', b'e', b'd', 0x91, 0xa2, 0xa3,
        0x31, 0x90,
    ];
    let message = parse_one(&MSGPACK, &input).expect("parses");
    let HubMessage::Invocation(invocation) = &message else { panic!("not an invocation: {message:?}") };
    assert!(format!("{:?}", invocation.arguments[0]).contains("Utf8Error"));
    assert_eq!(write(&MSGPACK, &message), input);
    // Nested in arrays and maps too.
    let nested = [0x0f, 0x96, 0x01, 0x80, 0xc0, 0xa1, b'T', 0x91, 0x91, 0x81, 0xa1, 0xff, 0xa2, 0xfe, 0xfd, 0x90];
    let message = parse_one(&MSGPACK, &nested).expect("parses");
    assert_eq!(write(&MSGPACK, &message), nested);
}
