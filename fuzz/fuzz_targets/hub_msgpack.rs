//! The `messagepack` hub protocol on raw bytes: every varint-prefixed message of the input, read
//! in chunks as a connection reads them; each parsed message must write and parse back to itself.
#![no_main]

use diquis_fuzz::{MAX_MESSAGE, check_rewrite, parse_stream, protocols, to_json};
use libfuzzer_sys::fuzz_target;
use signalr_protocol::MessagePackHubProtocol;

fuzz_target!(|data: &[u8]| {
    let Some((&read_size, input)) = data.split_first() else { return };
    let messages = parse_stream(&MessagePackHubProtocol, input, usize::from(read_size), MAX_MESSAGE);
    for message in &messages {
        // Values with a JSON form can be written with the JSON protocol (a hub sending to a
        // JSON client, the backplane carrying both) and read back.
        if let Some(json) = to_json(message) {
            check_rewrite(protocols()[0], &json);
        }
    }
    let _ = MessagePackHubProtocol::parse_body(input);
});
