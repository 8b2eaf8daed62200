//! Record-separator and varint framing.

use signalr_protocol::ProtocolError;
use signalr_protocol::framing::{Frame, encode_varint, find_binary_frame, find_text_frame, read_varint, write_binary_frame, write_varint};

#[test]
fn varint_vectors() {
    for (length, bytes) in [
        (0usize, vec![0x00]),
        (0x7f, vec![0x7f]),
        (0x80, vec![0x80, 0x01]),
        (199, vec![0xc7, 0x01]),
        (0x3fff, vec![0xff, 0x7f]),
        (0x4000, vec![0x80, 0x80, 0x01]),
        (0x7fff_ffff, vec![0xff, 0xff, 0xff, 0xff, 0x07]),
    ] {
        let mut out = Vec::new();
        write_varint(length, &mut out).unwrap();
        assert_eq!(out, bytes, "{length}");
        assert_eq!(read_varint(&bytes).unwrap(), Some((length, bytes.len())));
        // Every proper prefix is incomplete.
        for cut in 0..bytes.len() {
            assert_eq!(read_varint(&bytes[..cut]).unwrap(), None);
        }
    }
    let mut prefix = [0u8; 5];
    assert!(matches!(encode_varint(0x8000_0000, &mut prefix), Err(ProtocolError::LengthPrefixTooLarge)));
    assert!(matches!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x08]), Err(ProtocolError::LengthPrefixTooLarge)));
    assert!(matches!(read_varint(&[0x80, 0x80, 0x80, 0x80, 0xff]), Err(ProtocolError::LengthPrefixTooLarge)));
}

#[test]
fn binary_frames() {
    assert_eq!(find_binary_frame(&[0x02, 0x91], 10).unwrap(), None);
    assert_eq!(find_binary_frame(&[0x02, 0x91, 0x06, 0x02], 10).unwrap(), Some(Frame { payload_start: 1, payload_end: 3, frame_len: 3 }));
    assert!(matches!(find_binary_frame(&[0x0b], 10), Err(ProtocolError::MessageTooLarge { max: 10 })));
    for size in [0usize, 1, 127, 128, 300, 20_000] {
        let mut out = vec![0xaa];
        write_binary_frame(&mut out, |out| {
            out.extend(std::iter::repeat_n(0x55, size));
            Ok(())
        })
        .unwrap();
        let frame = find_binary_frame(&out[1..], usize::MAX).unwrap().unwrap();
        assert_eq!(frame.payload_end - frame.payload_start, size);
        assert_eq!(frame.frame_len, out.len() - 1);
        assert!(out[1..][frame.payload()].iter().all(|&b| b == 0x55));
    }
    // A failing body leaves the buffer as it was.
    let mut out = vec![1, 2];
    let result = write_binary_frame(&mut out, |out| {
        out.push(9);
        Err(ProtocolError::Value("no".into()))
    });
    assert!(result.is_err());
    assert_eq!(out, vec![1, 2]);
}

#[test]
fn text_frames() {
    assert_eq!(find_text_frame(b"{}", 10).unwrap(), None);
    assert_eq!(find_text_frame(b"{}\x1e{", 10).unwrap(), Some(Frame { payload_start: 0, payload_end: 2, frame_len: 3 }));
    assert!(matches!(find_text_frame(b"01234567890", 10), Err(ProtocolError::MessageTooLarge { max: 10 })));
    assert!(matches!(find_text_frame(b"01234567890\x1e", 10), Err(ProtocolError::MessageTooLarge { max: 10 })));
    assert!(find_text_frame(b"0123456789\x1e", 10).unwrap().is_some());
}
