//! Encoding and decoding of a typical invocation (a target and one ~100-byte object argument)
//! with both hub protocols.
//!
//! Wall-clock time by default. On a shared, busy machine set `CODEC_BENCH_CLOCK=cpu` to measure
//! the benchmark thread's CPU time instead (`CLOCK_THREAD_CPUTIME_ID`, 64-bit Linux), which is not
//! inflated by waiting for a core.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::Criterion;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use serde::{Deserialize, Serialize};
use signalr_protocol::value::ValueKind;
use signalr_protocol::{Headers, HubMessage, HubProtocol, InvocationMessage, JsonHubProtocol, MessagePackHubProtocol, Value};

/// About 100 bytes in either encoding.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    kind: String,
    message: String,
    tenant_id: String,
    sequence: u64,
}

fn payload() -> Notification {
    Notification {
        kind: "success".into(),
        message: "Tenant 'Acme' has been created successfully!".into(),
        tenant_id: "tenant-123".into(),
        sequence: 42,
    }
}

fn message(kind: ValueKind) -> HubMessage {
    HubMessage::Invocation(InvocationMessage {
        headers: Headers::new(),
        invocation_id: None,
        target: "TenantCreated".into(),
        arguments: vec![Value::from_serialize(kind, &payload()).expect("serializable")],
        stream_ids: Vec::new(),
    })
}

fn bench_protocol<M: Measurement + 'static>(c: &mut Criterion<M>, protocol: &dyn HubProtocol, kind: ValueKind) {
    let name = protocol.name();
    let message = message(kind);
    let mut out = Vec::with_capacity(256);
    protocol.write_message(&message, &mut out).expect("write");
    let frame = out.clone();

    c.bench_function(&format!("{name}/encode"), |b| {
        b.iter(|| {
            out.clear();
            protocol.write_message(black_box(&message), &mut out).expect("write");
            black_box(out.len())
        })
    });
    c.bench_function(&format!("{name}/serialize+encode"), |b| {
        let payload = payload();
        b.iter(|| {
            let argument = Value::from_serialize(kind, black_box(&payload)).expect("serialize");
            let message = HubMessage::Invocation(InvocationMessage {
                headers: Headers::new(),
                invocation_id: None,
                target: "TenantCreated".into(),
                arguments: vec![argument],
                stream_ids: Vec::new(),
            });
            out.clear();
            protocol.write_message(&message, &mut out).expect("write");
            black_box(out.len())
        })
    });
    c.bench_function(&format!("{name}/decode"), |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(black_box(&frame[..]));
            black_box(protocol.parse_message(&mut buf, 32 * 1024).expect("parse"))
        })
    });
    c.bench_function(&format!("{name}/decode+bind"), |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(black_box(&frame[..]));
            let Some(HubMessage::Invocation(invocation)) = protocol.parse_message(&mut buf, 32 * 1024).expect("parse") else {
                unreachable!("the frame holds an invocation")
            };
            black_box(invocation.arguments[0].deserialize::<Notification>().expect("bind"))
        })
    });
}

fn codec<M: Measurement + 'static>(c: &mut Criterion<M>) {
    for (protocol, kind) in [(&JsonHubProtocol as &dyn HubProtocol, ValueKind::Json), (&MessagePackHubProtocol, ValueKind::MsgPack)] {
        let mut out = Vec::new();
        protocol.write_message(&message(kind), &mut out).expect("write");
        eprintln!("{}: frame of {} bytes", protocol.name(), out.len());
        bench_protocol(c, protocol, kind);
    }
}

/// CPU time of the calling thread, in nanoseconds.
struct ThreadCpuTime;

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

unsafe extern "C" {
    /// POSIX `clock_gettime` from the C library the binary links anyway.
    fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
}

/// Linux's `CLOCK_THREAD_CPUTIME_ID`.
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

fn thread_cpu_nanos() -> u64 {
    let mut time = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `time` is a valid, writable timespec (two C longs on 64-bit Linux).
    let result = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut time) };
    assert_eq!(result, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    time.tv_sec as u64 * 1_000_000_000 + time.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_nanos()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_nanos().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Values are nanoseconds, like wall time's.
        WallTime.formatter()
    }
}

fn main() {
    if std::env::var("CODEC_BENCH_CLOCK").as_deref() == Ok("cpu") {
        let mut c = Criterion::default().with_measurement(ThreadCpuTime).configure_from_args();
        codec(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default().configure_from_args();
        codec(&mut c);
        c.final_summary();
    }
}
