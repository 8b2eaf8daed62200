//! The WebSocket framing seen from a raw TCP client: the bytes RFC 6455 specifies, including the
//! ones a friendly client library would never send.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::Server;
use signalr_connections::HttpConnectionOptions;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const MASK: [u8; 4] = [0xA1, 0x05, 0x7C, 0x33];

/// Opens a WebSocket on `/echo` (skipNegotiation) by hand and returns the raw stream.
async fn open(server: &Server) -> TcpStream {
    open_on(server, TcpSocket::new_v4().unwrap()).await
}

/// [`open`] from `socket` (options set beforehand).
async fn open_on(server: &Server, socket: TcpSocket) -> TcpStream {
    open_sending(server, socket, &[]).await
}

/// [`open_on`], sending `early` in the same write as the upgrade request.
async fn open_sending(server: &Server, socket: TcpSocket, early: &[u8]) -> TcpStream {
    let addr = server.base.trim_start_matches("http://").trim_end_matches("/echo");
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(&[request.as_bytes(), early].concat()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
    stream
}

/// A masked client frame.
fn frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// Reads one server frame: (first byte, payload). Server frames are never masked.
async fn read_frame(stream: &mut (impl AsyncRead + Unpin)) -> (u8, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7F {
            126 => u64::from(stream.read_u16().await.unwrap()),
            127 => stream.read_u64().await.unwrap(),
            n => u64::from(n),
        };
        let mut payload = vec![0u8; len as usize];
        stream.read_exact(&mut payload).await.unwrap();
        (head[0], payload)
    })
    .await
    .expect("a frame within 10 s")
}

/// Reads until the server ends the TCP connection.
async fn expect_end(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the server ends the connection");
}

#[tokio::test]
async fn pings_are_answered_with_their_payload() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut ws = open(&server).await;
    server.connected().await;
    ws.write_all(&frame(0x89, b"are you there")).await.unwrap();
    assert_eq!(read_frame(&mut ws).await, (0x8A, b"are you there".to_vec()));
    // Unsolicited pongs are ignored; data still flows.
    ws.write_all(&frame(0x8A, b"")).await.unwrap();
    ws.write_all(&frame(0x81, b"still here")).await.unwrap();
    assert_eq!(read_frame(&mut ws).await, (0x81, b"still here".to_vec()));
}

/// Frames a client sends before it sees the 101 arrive, in order: the server takes the socket
/// back from hyper with the bytes read behind the upgrade request.
#[tokio::test]
async fn frames_sent_with_the_upgrade_request_are_read_first() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let early = [frame(0x89, b"early ping"), frame(0x81, b"early text")].concat();
    let mut ws = open_sending(&server, TcpSocket::new_v4().unwrap(), &early).await;
    server.connected().await;
    assert_eq!(read_frame(&mut ws).await, (0x8A, b"early ping".to_vec()));
    assert_eq!(&server.data().await[..], b"early text");
    assert_eq!(read_frame(&mut ws).await, (0x81, b"early text".to_vec()));
    ws.write_all(&frame(0x81, b"later")).await.unwrap();
    assert_eq!(read_frame(&mut ws).await, (0x81, b"later".to_vec()));
}

#[tokio::test]
async fn a_frame_sent_one_byte_at_a_time_arrives_whole() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut ws = open(&server).await;
    server.connected().await;
    let payload: Vec<u8> = (0..300).map(|i| b'a' + (i % 26) as u8).collect();
    ws.set_nodelay(true).unwrap();
    for byte in frame(0x81, &payload) {
        ws.write_all(&[byte]).await.unwrap();
        ws.flush().await.unwrap();
    }
    assert_eq!(&server.data().await[..], &payload[..]);
    assert_eq!(read_frame(&mut ws).await, (0x81, payload));
}

#[tokio::test]
async fn a_large_fragmented_message_is_reassembled() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut ws = open(&server).await;
    server.connected().await;
    let payload: Vec<u8> = (0..60_000u32).map(|i| (i % 253) as u8).collect();
    let mut bytes = frame(0x02, &payload[..20_000]);
    bytes.extend(frame(0x89, b"mid"));
    bytes.extend(frame(0x00, &payload[20_000..40_000]));
    bytes.extend(frame(0x80, &payload[40_000..]));
    ws.write_all(&bytes).await.unwrap();
    assert_eq!(read_frame(&mut ws).await, (0x8A, b"mid".to_vec()));
    let mut received = Vec::new();
    while received.len() < payload.len() {
        received.extend_from_slice(&server.data().await);
    }
    assert_eq!(received, payload);
    // The echo is one frame, typed by the transfer format (text by default).
    let (first, echoed) = read_frame(&mut ws).await;
    assert_eq!(first, 0x81);
    assert_eq!(echoed, payload);
}

#[tokio::test]
async fn the_clients_close_code_is_echoed_and_the_connection_ends() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut ws = open(&server).await;
    server.connected().await;
    ws.write_all(&frame(0x88, &[0x03, 0xE9, b'b', b'y', b'e'])).await.unwrap();
    assert_eq!(read_frame(&mut ws).await, (0x88, vec![0x03, 0xE9]));
    server.closed().await;
    expect_end(&mut ws).await;
}

/// Sends `bytes` after the handshake and expects a close frame with `code`, then the end.
async fn refused_with(bytes: Vec<u8>, code: u16) {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut ws = open(&server).await;
    server.connected().await;
    ws.write_all(&bytes).await.unwrap();
    let (first, payload) = read_frame(&mut ws).await;
    assert_eq!(first, 0x88, "a close frame for {bytes:02x?}");
    assert_eq!(payload, code.to_be_bytes(), "close code for {bytes:02x?}");
    // The server ends its side after its close frame; the client answers and ends its own.
    expect_end(&mut ws).await;
    let _ = ws.write_all(&frame(0x88, &code.to_be_bytes())).await;
    let _ = ws.shutdown().await;
    server.closed().await;
}

#[tokio::test]
async fn an_unmasked_frame_is_a_protocol_error() {
    refused_with(vec![0x81, 0x02, b'h', b'i'], 1002).await;
}

#[tokio::test]
async fn reserved_bits_and_unknown_opcodes_are_protocol_errors() {
    refused_with(frame(0xC1, b"compressed?"), 1002).await;
    refused_with(frame(0x83, b"opcode 3"), 1002).await;
    refused_with(frame(0x80, b"continuation of nothing"), 1002).await;
    refused_with(frame(0x09, b"fragmented ping"), 1002).await;
}

#[tokio::test]
async fn text_that_is_not_utf8_is_closed_with_1007() {
    refused_with(frame(0x81, &[b'{', 0xFF, 0xFE, b'}']), 1007).await;
}

#[tokio::test]
async fn a_frame_over_the_limit_is_refused_from_its_header() {
    // Only the header: the server refuses before the payload arrives.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&MASK);
    refused_with(header, 1009).await;
}

/// Sends from other tasks to an idle connection are written by flushes straight to the socket,
/// while the connection's task answers pings on the same socket: every frame arrives whole,
/// the messages in order, and the pongs in order up to the last ping's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_other_tasks_and_pongs_share_the_socket_frame_by_frame() {
    const MESSAGES: usize = 3000;
    const PINGS: usize = 200;
    const LIMIT: usize = 64 * 1024;
    let mut server = Server::start(HttpConnectionOptions::default().outbound_buffer_limit(LIMIT)).await;
    let ws = open(&server).await;
    let connection = server.connected().await;
    let (mut reader, mut writer) = ws.into_split();
    let sender = tokio::spawn(async move {
        for i in 0..MESSAGES {
            connection.send(Bytes::from(format!("{i};"))).unwrap();
            if i % 2 == 0 {
                // Until it is written: the next send finds the connection idle again.
                connection.send_space(LIMIT).await;
            }
        }
        connection
    });
    let pinger = tokio::spawn(async move {
        for k in 0..PINGS {
            writer.write_all(&frame(0x89, format!("p{k}").as_bytes())).await.unwrap();
            tokio::task::yield_now().await;
        }
        writer
    });
    let expected: String = (0..MESSAGES).map(|i| format!("{i};")).collect();
    let last_ping = PINGS - 1;
    let (mut data, mut pongs) = (Vec::new(), Vec::new());
    while data.len() < expected.len() || pongs.last() != Some(&last_ping) {
        match read_frame(&mut reader).await {
            (0x81, payload) => data.extend(payload),
            (0x8A, payload) => pongs.push(String::from_utf8(payload).unwrap()[1..].parse::<usize>().unwrap()),
            (other, _) => panic!("unexpected frame {other:#x}"),
        }
    }
    assert_eq!(String::from_utf8(data).unwrap(), expected);
    // Pings read together get one pong, for the newest (RFC 6455 §5.5.3).
    assert!(pongs.windows(2).all(|pair| pair[0] < pair[1]), "{pongs:?}");
    assert!(!sender.await.unwrap().is_closed());
    drop(pinger.await.unwrap());
}

/// A message larger than the socket takes at once, sent while the client does not read: the
/// flush writes part of it and hands the rest to the connection's task, which finishes it once
/// the client reads; the message after it follows whole, and the client gets every byte in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_the_socket_takes_in_part_is_finished_in_order() {
    const SIZE: usize = 8 << 20;
    let big = Bytes::from((0..SIZE).map(|i| b'a' + (i % 23) as u8).collect::<Vec<u8>>());
    let mut server = Server::start(HttpConnectionOptions::default().outbound_buffer_limit(2 * SIZE)).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut ws = open_on(&server, socket).await;
    let connection = server.connected().await;
    connection.send(big.clone()).unwrap();
    connection.send(Bytes::from_static(b"after")).unwrap();
    let mut data = Vec::new();
    while data.len() < SIZE + 5 {
        let (first, payload) = read_frame(&mut ws).await;
        assert_eq!(first, 0x81, "a whole text frame");
        data.extend(payload);
    }
    assert_eq!(data.len(), SIZE + 5);
    assert!(data[..SIZE] == big[..], "the large message arrived whole");
    assert_eq!(&data[SIZE..], b"after");
    // Idle again: the next message is written as before.
    connection.send(Bytes::from_static(b"again")).unwrap();
    assert_eq!(read_frame(&mut ws).await, (0x81, b"again".to_vec()));
    assert!(!connection.is_closed());
}

/// A send from a thread of another runtime, one that ends right after, is written by the
/// endpoint's runtime: the message arrives although the sender's runtime is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_from_a_runtime_that_ends_at_once_is_still_written() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut ws = open(&server).await;
    let connection = server.connected().await;
    // A round trip first: then the connection is idle, its task waiting on the socket.
    ws.write_all(&frame(0x81, b"hello")).await.unwrap();
    assert_eq!(read_frame(&mut ws).await, (0x81, b"hello".to_vec()));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async { connection.send(Bytes::from_static(b"from elsewhere")).unwrap() });
    })
    .join()
    .unwrap();
    assert_eq!(read_frame(&mut ws).await, (0x81, b"from elsewhere".to_vec()));
}
