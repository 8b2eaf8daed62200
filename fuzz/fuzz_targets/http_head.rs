//! The server's HTTP/1.1 request-head checks (line endings, request-line and header limits, body
//! framing by httparse, chunked bodies) over a pipelined byte stream, in reads of fuzzer-chosen
//! sizes: never panic, and the result does not depend on how the bytes were split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signalr_connections::fuzzing::http_request_stream;

fuzz_target!(|data: &[u8]| {
    let Some((&read_size, input)) = data.split_first() else { return };
    // Kestrel's defaults (8 KiB request line, 32 KiB headers) and small limits.
    for (line, headers) in [(8192, 32768), (64, 128)] {
        let whole = http_request_stream(input, input.len(), line, headers);
        let split = http_request_stream(input, usize::from(read_size), line, headers);
        assert_eq!(whole, split, "the same bytes read in pieces of {read_size} gave another result");
    }
});
