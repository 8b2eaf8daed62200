//! Structured WebSocket input: client frames (any opcode, fragmentation, masks and length forms)
//! encoded as a client does and split into reads; the decoder hands on exactly the payloads of the
//! data messages, in order, answers pings with their payload, and refuses what RFC 6455 forbids.
#![no_main]

use diquis_fuzz::ClientFrame;
use libfuzzer_sys::fuzz_target;
use signalr_connections::fuzzing::{WebSocketEvent, websocket_read};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    frames: Vec<ClientFrame>,
    read_sizes: Vec<u8>,
    small_limit: bool,
}

/// What a correct server does with `frames`: the expected data, pings, and whether it stops.
fn expected(frames: &[ClientFrame], max_message: usize) -> (Vec<u8>, Vec<Vec<u8>>, Option<WebSocketEvent>) {
    let mut data = Vec::new();
    let mut pings = Vec::new();
    let mut open: Option<(u8, Vec<u8>)> = None;
    for frame in frames {
        let opcode = frame.opcode & 0x0f;
        match opcode {
            0x0..=0x2 => {
                let (kind, mut so_far) = match (opcode, open.take()) {
                    (0, Some(open)) => open,
                    (1 | 2, None) => (opcode, Vec::new()),
                    _ => return (data, pings, Some(WebSocketEvent::Invalid(1002))),
                };
                if so_far.len() + frame.payload.len() > max_message {
                    return (data, pings, Some(WebSocketEvent::Invalid(1009)));
                }
                so_far.extend_from_slice(&frame.payload);
                if frame.fin {
                    if kind == 1 && std::str::from_utf8(&so_far).is_err() {
                        return (data, pings, Some(WebSocketEvent::Invalid(1007)));
                    }
                    data.extend_from_slice(&so_far);
                } else {
                    open = Some((kind, so_far));
                }
            }
            0x8..=0xa => {
                if !frame.fin || frame.payload.len() > 125 {
                    return (data, pings, Some(WebSocketEvent::Invalid(1002)));
                }
                match opcode {
                    0x9 => pings.push(frame.payload.clone()),
                    0x8 => {
                        let stop = match frame.payload.len() {
                            0 => WebSocketEvent::Close(None),
                            1 => WebSocketEvent::Invalid(1002),
                            _ if std::str::from_utf8(&frame.payload[2..]).is_err() => WebSocketEvent::Invalid(1007),
                            _ => {
                                let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                                if matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999) {
                                    WebSocketEvent::Close(Some(code))
                                } else {
                                    WebSocketEvent::Invalid(1002)
                                }
                            }
                        };
                        return (data, pings, Some(stop));
                    }
                    _ => {}
                }
            }
            _ => return (data, pings, Some(WebSocketEvent::Invalid(1002))),
        }
    }
    (data, pings, None)
}

fuzz_target!(|input: Input| {
    let max_message = if input.small_limit { 64 } else { 32 * 1024 };
    let mut bytes = Vec::new();
    for frame in &input.frames {
        frame.write(&mut bytes);
    }
    let read_sizes: Vec<usize> = input.read_sizes.iter().map(|&s| usize::from(s)).collect();
    let read = websocket_read(max_message, &bytes, &read_sizes);
    let (data, pings, stop) = expected(&input.frames, max_message);

    let mut got_data = Vec::new();
    let mut got_pings = Vec::new();
    let mut got_stop = None;
    for event in read.events {
        match event {
            WebSocketEvent::Data(d) => got_data.extend_from_slice(&d),
            WebSocketEvent::Ping(p) => got_pings.push(p.to_vec()),
            other => got_stop = Some(other),
        }
    }
    assert_eq!(got_stop, stop);
    assert_eq!(got_pings, pings);
    assert_eq!(got_data, data);
});
