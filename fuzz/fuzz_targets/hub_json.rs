//! The `json` hub protocol on raw bytes: every record-separated message of the input, read in
//! chunks as a connection reads them; each parsed message must write and parse back to itself,
//! and convert to MessagePack and back.
#![no_main]

use diquis_fuzz::{MAX_MESSAGE, parse_stream, protocols, to_json, to_msgpack};
use libfuzzer_sys::fuzz_target;
use signalr_protocol::JsonHubProtocol;

fuzz_target!(|data: &[u8]| {
    let Some((&read_size, input)) = data.split_first() else { return };
    let messages = parse_stream(&JsonHubProtocol, input, usize::from(read_size), MAX_MESSAGE);
    for message in &messages {
        // JSON values always have a MessagePack form; it parses back with the other protocol.
        let packed = to_msgpack(message);
        diquis_fuzz::check_rewrite(protocols()[1], &packed);
        // And back: MessagePack integers and floats map to the same JSON numbers.
        let back = to_json(&packed).expect("values from JSON convert back");
        diquis_fuzz::assert_messages_eq(message, &back);
    }
    let _ = JsonHubProtocol::parse_payload(input);
});
