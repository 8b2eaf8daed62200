//! Text (record separator) and binary (varint length prefix) framing: finding frames never reads
//! out of bounds, respects the size limit, and a length written as a varint reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signalr_protocol::framing::{encode_varint, find_binary_frame, find_text_frame, read_varint, write_varint};

fuzz_target!(|data: &[u8]| {
    let Some((&limit, input)) = data.split_first() else { return };
    for max in [usize::from(limit), input.len(), usize::MAX] {
        if let Ok(Some(frame)) = find_text_frame(input, max) {
            assert!(frame.frame_len <= input.len());
            assert!(frame.payload().end <= frame.frame_len);
            assert!(frame.payload().len() <= max);
            assert_eq!(input[frame.frame_len - 1], 0x1e);
            assert!(!input[frame.payload()].contains(&0x1e));
        }
        if let Ok(Some(frame)) = find_binary_frame(input, max) {
            assert!(frame.frame_len <= input.len());
            assert!(frame.payload().end == frame.frame_len);
            assert!(frame.payload().len() <= max);
        }
    }
    if let Ok(Some((length, used))) = read_varint(input) {
        assert!((1..=5).contains(&used) && used <= input.len());
        let mut prefix = [0u8; 5];
        if let Ok(written) = encode_varint(length, &mut prefix) {
            assert_eq!(read_varint(&prefix[..written]).expect("written varint reads"), Some((length, written)));
            let mut out = Vec::new();
            write_varint(length, &mut out).expect("encodable length writes");
            assert_eq!(out, &prefix[..written]);
        }
    }
    if input.len() >= 4 {
        let length = u32::from_le_bytes([input[0], input[1], input[2], input[3]]) as usize;
        let mut prefix = [0u8; 5];
        if let Ok(written) = encode_varint(length, &mut prefix) {
            assert_eq!(read_varint(&prefix[..written]).expect("written varint reads"), Some((length, written)));
        }
    }
});
