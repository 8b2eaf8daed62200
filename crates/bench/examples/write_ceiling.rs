//! The floor under every broadcast latency on this machine: how long it takes merely to `write`
//! one small frame to each of N loopback TCP connections, with no server, no protocol and no
//! WebSocket — plain blocking `write(2)` calls from `threads` writer threads, while a reader
//! process drains every socket (epoll through tokio, one thread, like a lean client).
//!
//! ```text
//! cargo run --release -p bench --example write_ceiling -- [connections] [rounds] [threads] [rate] [coalesce]
//! ```
//! Each round writes one 100-byte frame to every connection (what one broadcast costs when no
//! two messages share a write). `rate` (rounds/s, 0 = back to back) paces the rounds like a
//! paced broadcast. Prints write()s per second and, per round, the time from its first write to
//! its last one (a lower bound for the latency of the last receiver of a broadcast).
//!
//! Every frame carries its due time (the round's start on the clock, µs since the Unix epoch),
//! and the reader records, for every frame, the time from that due time to reading it: "due to
//! received", the same statistic as `diquis-bench`'s delivery latency (send time to receipt),
//! so a server's p99 compares with this p99 directly.
//!
//! With `coalesce` (needs a rate), rounds are due on the clock whether or not the last one was
//! written, and each writer thread sweeps its connections round robin, writing every frame due
//! for a connection in one `write` — what a server that lets queued messages share a write can
//! do at best when the rate is more than the machine's writes can carry one by one. Prints the
//! time from each frame's due time to its write (p50/p99 over every delivery): the latency floor
//! of a paced broadcast with coalescing.
//!
//! With `readers=R`, R reader processes share the connections (as `diquis-bench` spreads its
//! sockets over worker processes). With `processes=K`, K writer processes each take a K-th of the connections,
//! with a reader process each, and start their rounds at the same instant on the clock: the
//! floor of a load spread over K server nodes (and past one process's file limit, e.g. 100,000
//! connections over six). The per-delivery figures are merged over all of them.
//! Not a test: a measurement for docs/benchmarks.md.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FRAME: usize = 100;
/// Connections per source address (ports per (source, destination) pair are limited).
const PER_SOURCE: usize = 25_000;

type Histogram = hdrhistogram::Histogram<u64>;

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("reader") {
        reader(args[2].parse().unwrap(), args[3].parse().unwrap(), args[4].parse().unwrap());
        return;
    }
    // `writer`: one of several writer processes, started by `coordinate`.
    let synchronised = args.get(1).map(String::as_str) == Some("writer");
    if synchronised {
        args.remove(1);
    }
    // `key=value` options, after the positional arguments.
    let option = |args: &mut Vec<String>, key: &str| -> Option<usize> {
        let at = args.iter().position(|a| a.starts_with(key))?;
        let value = args.remove(at)[key.len()..].parse().unwrap_or_else(|_| panic!("{key}N needs a number"));
        Some(value)
    };
    let processes = option(&mut args, "processes=").unwrap_or(1).max(1);
    let readers = option(&mut args, "readers=").unwrap_or(1).max(1);
    let connections: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(100);
    let threads: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(2).max(1);
    let rate: f64 = args.get(4).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let coalesce = args.get(5).map(String::as_str) == Some("coalesce");
    assert!(!coalesce || rate > 0.0, "coalesce needs a rate");
    if processes > 1 {
        assert!(rate > 0.0, "processes=K needs a rate (the writers start rounds on the clock)");
        coordinate(&args[1..], processes, readers, connections);
        return;
    }
    let measured = write_rounds(connections, rounds, threads, rate, coalesce, readers, synchronised);
    if synchronised {
        // The coordinator merges every writer's deliveries and sums the CPU.
        for value in measured.received.iter_recorded() {
            println!("H {} {}", value.value_iterated_to(), value.count_at_value());
        }
        println!("C {} {} {}", measured.writer_cpu_us, measured.reader_cpu_us, measured.wall_us);
    } else {
        println!("{}", received_summary(&measured.received));
        println!("{}", cpu_summary(measured.writer_cpu_us, measured.reader_cpu_us, measured.wall_us, measured.received.len()));
    }
}

/// What one writer process measured.
struct Measured {
    /// Due to received, per delivery, from every reader.
    received: Histogram,
    /// CPU time of the writer process while writing (user + system).
    writer_cpu_us: u64,
    /// CPU time of its reader processes while reading.
    reader_cpu_us: u64,
    /// Wall time of the writing.
    wall_us: u64,
}

/// CPU time of this process so far (user + system), in µs.
fn cpu_us() -> u64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// The CPU line: writers' and readers' CPU per delivery and as a share of a core.
fn cpu_summary(writer_us: u64, reader_us: u64, wall_us: u64, deliveries: u64) -> String {
    let per = |us: u64| us as f64 / deliveries.max(1) as f64;
    let share = |us: u64| 100.0 * us as f64 / wall_us.max(1) as f64;
    format!(
        "cpu: writers {:.2} µs per delivery ({:.0}% of a core), readers {:.2} µs per delivery ({:.0}% of a core)",
        per(writer_us),
        share(writer_us),
        per(reader_us),
        share(reader_us)
    )
}

/// Starts `processes` writer processes with a K-th of the connections each, starts them at
/// one instant, and prints what they measured, merged.
fn coordinate(args: &[String], processes: usize, readers: usize, connections: usize) {
    let mut children = Vec::new();
    for index in 0..processes {
        let share = connections / processes + usize::from(index < connections % processes);
        let mut child_args = vec!["writer".to_owned(), share.to_string()];
        child_args.extend(args[1..].iter().cloned());
        child_args.push(format!("readers={readers}"));
        let child =
            Command::new(std::env::current_exe().unwrap()).args(&child_args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        children.push(child);
    }
    let mut outputs = Vec::new();
    for child in &mut children {
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert_eq!(line.trim(), "ready", "a writer process failed to set up");
        outputs.push(out);
    }
    let start_us = unix_us() + 300_000;
    for child in &mut children {
        writeln!(child.stdin.as_mut().unwrap(), "{start_us}").unwrap();
    }
    let mut all = Histogram::new(3).unwrap();
    let (mut writer_us, mut reader_us, mut wall_us) = (0, 0, 0);
    for (index, out) in outputs.into_iter().enumerate() {
        for line in std::io::BufRead::lines(out) {
            let line = line.unwrap();
            if let Some(cpu) = line.strip_prefix("C ") {
                let v: Vec<u64> = cpu.split(' ').map(|v| v.parse().unwrap()).collect();
                writer_us += v[0];
                reader_us += v[1];
                wall_us = wall_us.max(v[2]);
                continue;
            }
            match line.strip_prefix("H ").map(|rest| rest.split_once(' ')) {
                Some(Some((value, count))) => all.record_n(value.parse().unwrap(), count.parse().unwrap()).unwrap(),
                _ => println!("writer {index}: {line}"),
            }
        }
    }
    for mut child in children {
        let _ = child.wait();
    }
    println!("{processes} writer processes, {connections} connections in all");
    println!("{}", received_summary(&all));
    println!("{}", cpu_summary(writer_us, reader_us, wall_us, all.len()));
}

/// Accepts `connections` sockets from `readers` reader processes, writes the rounds, prints
/// the write rate, and returns the readers' due-to-received histogram. `synchronised`: say
/// "ready" on stdout and start at the instant read from stdin (µs since the Unix epoch).
fn write_rounds(
    connections: usize,
    rounds: usize,
    threads: usize,
    rate: f64,
    coalesce: bool,
    readers: usize,
    synchronised: bool,
) -> Measured {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut children: Vec<_> = (0..readers)
        .map(|index| {
            let share = connections / readers + usize::from(index < connections % readers);
            Command::new(std::env::current_exe().unwrap())
                .args(["reader", &addr.to_string(), &share.to_string(), &(rounds * FRAME).to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut sockets = Vec::with_capacity(connections);
    listener.set_nonblocking(true).unwrap();
    while sockets.len() < connections {
        match listener.accept() {
            Ok((socket, _)) => {
                socket.set_nonblocking(false).unwrap();
                socket.set_nodelay(true).unwrap();
                sockets.push(socket);
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                for child in &mut children {
                    if let Some(status) = child.try_wait().unwrap() {
                        panic!("a reader process ended early: {status}");
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(error) => panic!("accept failed: {error}"),
        }
    }
    let mut outs: Vec<_> = children.iter_mut().map(|child| child.stdout.take().unwrap()).collect();
    for out in &mut outs {
        let mut ready = [0u8; 1];
        out.read_exact(&mut ready).unwrap();
    }
    // Every reader's deliveries, once they are all read.
    let mut received = move || {
        let mut all = Histogram::new(3).unwrap();
        let mut cpu = 0;
        for out in &mut outs {
            let (histogram, reader_cpu) = received_histogram(out);
            all.add(histogram).unwrap();
            cpu += reader_cpu;
        }
        for child in &mut children {
            let _ = child.wait();
        }
        (all, cpu)
    };
    let (started, started_at) = if synchronised {
        println!("ready");
        std::io::stdout().flush().unwrap();
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        let start_us: u64 = line.trim().parse().expect("a start time");
        let now_us = unix_us();
        (Instant::now() + Duration::from_micros(start_us.saturating_sub(now_us)), start_us.max(now_us))
    } else {
        (Instant::now(), unix_us())
    };
    if let Some(wait) = started.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    let cpu_before = cpu_us();
    let measured = |started: Instant, (received, reader_cpu_us): (Histogram, u64)| Measured {
        received,
        writer_cpu_us: cpu_us() - cpu_before,
        reader_cpu_us,
        wall_us: started.elapsed().as_micros() as u64,
    };

    let per_thread = connections.div_ceil(threads);
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
    if coalesce {
        coalesced_rounds(&mut sockets, rounds, per_thread, Duration::from_secs_f64(1.0 / rate), started, started_at);
        let wall = started.elapsed();
        let mut result = measured(started, received());
        result.wall_us = wall.as_micros() as u64;
        return result;
    }
    let mut round_ms = Vec::with_capacity(rounds);
    for round in 0..rounds {
        if let Some(interval) = interval {
            let due = started + interval * round as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let begin = Instant::now();
        // Due at the round's start on the clock (paced: when it was scheduled).
        let due_us = match interval {
            Some(interval) => started_at + (interval * round as u32).as_micros() as u64,
            None => unix_us(),
        };
        let frame = stamped(due_us);
        let frame = &frame;
        std::thread::scope(|scope| {
            for chunk in sockets.chunks_mut(per_thread) {
                scope.spawn(|| {
                    for socket in chunk {
                        socket.write_all(frame).unwrap();
                    }
                });
            }
        });
        round_ms.push(begin.elapsed().as_secs_f64() * 1000.0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let wall = started.elapsed();
    let mut result = measured(started, received());
    result.wall_us = wall.as_micros() as u64;
    round_ms.sort_by(f64::total_cmp);
    let pick = |q: f64| round_ms[((round_ms.len() - 1) as f64 * q).round() as usize];
    let writes = (connections * rounds) as f64;
    println!(
        "connections {connections}, rounds {rounds}, writer threads {threads}, rate {}",
        if rate > 0.0 { format!("{rate}/s") } else { "back to back".into() }
    );
    println!(
        "write()s/s {:.0} ({:.2} µs of wall time per write); one round to all connections: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        writes / elapsed,
        elapsed * 1e6 / writes,
        pick(0.5),
        pick(0.99),
        pick(1.0)
    );
    result
}

/// The clock both processes share, in µs since the Unix epoch.
fn unix_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// One frame due at `due_us`: the time in its first 8 bytes, padding after.
fn stamped(due_us: u64) -> [u8; FRAME] {
    let mut frame = [b'x'; FRAME];
    frame[..8].copy_from_slice(&due_us.to_le_bytes());
    frame
}

/// Reads the reader's histogram (after its "done" byte: a `value count` line per bucket).
fn received_histogram(child_out: &mut impl Read) -> (Histogram, u64) {
    let mut report = String::new();
    child_out.read_to_string(&mut report).unwrap();
    let mut histogram = Histogram::new(3).unwrap();
    let mut cpu = 0;
    for line in report.trim_start_matches('d').lines() {
        if let Some(reader_cpu) = line.strip_prefix("C ") {
            cpu = reader_cpu.parse().unwrap();
        } else if let Some((value, count)) = line.split_once(' ') {
            histogram.record_n(value.parse().unwrap(), count.parse().unwrap()).unwrap();
        }
    }
    (histogram, cpu)
}

/// The per-delivery line: due to received.
fn received_summary(histogram: &Histogram) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "due to received ms (per delivery, n={}): p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        histogram.len(),
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.9)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max())
    )
}

/// The `coalesce` mode: see the module comment.
fn coalesced_rounds(
    sockets: &mut [std::net::TcpStream],
    rounds: usize,
    per_thread: usize,
    interval: Duration,
    started: Instant,
    started_at: u64,
) {
    let frames: Vec<u8> = (0..rounds).flat_map(|round| stamped(started_at + (interval * round as u32).as_micros() as u64)).collect();
    let due = |round: usize| started + interval * round as u32;
    let (histograms, writes): (Vec<_>, Vec<_>) = std::thread::scope(|scope| {
        let threads: Vec<_> = sockets
            .chunks_mut(per_thread)
            .map(|chunk| {
                let frames = &frames;
                scope.spawn(move || {
                    let mut histogram = hdrhistogram::Histogram::<u64>::new(3).unwrap();
                    let mut written = vec![0usize; chunk.len()];
                    let mut writes = 0u64;
                    loop {
                        let mut wrote = false;
                        for (socket, done) in chunk.iter_mut().zip(written.iter_mut()) {
                            let now = Instant::now();
                            let due_now = ((now - started).as_nanos() / interval.as_nanos()) as usize + 1;
                            let upto = due_now.min(rounds);
                            if upto > *done {
                                socket.write_all(&frames[*done * FRAME..upto * FRAME]).unwrap();
                                let at = Instant::now();
                                for round in *done..upto {
                                    histogram.record((at - due(round)).as_micros() as u64).unwrap();
                                }
                                *done = upto;
                                writes += 1;
                                wrote = true;
                            }
                        }
                        if written.iter().all(|&done| done == rounds) {
                            return (histogram, writes);
                        }
                        if !wrote {
                            let next = written.iter().min().copied().unwrap_or(0).max(1);
                            if let Some(wait) = due(next).checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().map(|thread| thread.join().unwrap()).unzip()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for histogram in &histograms {
        all.add(histogram).unwrap();
    }
    let writes: u64 = writes.iter().sum();
    let deliveries = (sockets.len() * rounds) as f64;
    println!(
        "connections {}, rounds {rounds}, writer threads {}, {:.0} rounds/s, coalescing",
        sockets.len(),
        histograms.len(),
        1.0 / interval.as_secs_f64()
    );
    println!(
        "write()s/s {:.0}, {:.2} frames per write; due to written ms: p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        writes as f64 / elapsed,
        deliveries / writes as f64,
        all.value_at_quantile(0.5) as f64 / 1000.0,
        all.value_at_quantile(0.9) as f64 / 1000.0,
        all.value_at_quantile(0.99) as f64 / 1000.0,
        all.max() as f64 / 1000.0
    );
}

/// Connects `connections` sockets to `addr` and reads `per_socket` bytes from each; writes one
/// byte to stdout when connected and one when everything was read.
fn reader(addr: SocketAddr, connections: usize, per_socket: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let mut sockets = Vec::with_capacity(connections);
        for index in 0..connections {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            let group = index / PER_SOURCE;
            if group > 0 {
                // Another source address for the next 25,000; the port is chosen at connect
                // time (IP_BIND_ADDRESS_NO_PORT), so ports in TIME_WAIT do not block the bind.
                use std::os::fd::AsRawFd;
                let one: libc::c_int = 1;
                // SAFETY: a valid socket fd and a c_int option value of the right length.
                unsafe {
                    libc::setsockopt(
                        socket.as_raw_fd(),
                        libc::IPPROTO_IP,
                        libc::IP_BIND_ADDRESS_NO_PORT,
                        (&raw const one).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    );
                }
                let source = Ipv4Addr::new(127, 0, 0, 1 + group as u8);
                socket.bind(SocketAddr::from((source, 0))).unwrap();
            }
            sockets.push(socket.connect(addr).await.unwrap());
        }
        let mut stdout = std::io::stdout();
        let cpu_connected = cpu_us();
        stdout.write_all(b"r").unwrap();
        stdout.flush().unwrap();
        let histogram = std::sync::Arc::new(std::sync::Mutex::new(hdrhistogram::Histogram::<u64>::new(3).unwrap()));
        let mut tasks = tokio::task::JoinSet::new();
        for mut socket in sockets {
            let histogram = histogram.clone();
            tasks.spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 4096];
                // Bytes of a frame split across reads: its stamp is in the first 8.
                let mut partial: Vec<u8> = Vec::new();
                let mut left = per_socket;
                while left > 0 {
                    let n = socket.read(&mut buf).await.unwrap();
                    assert!(n > 0, "connection ended early");
                    left -= n.min(left);
                    let now = unix_us();
                    partial.extend_from_slice(&buf[..n]);
                    let whole = partial.len() / FRAME * FRAME;
                    let mut histogram = histogram.lock().unwrap();
                    for frame in partial[..whole].chunks_exact(FRAME) {
                        let due = u64::from_le_bytes(frame[..8].try_into().unwrap());
                        histogram.record(now.saturating_sub(due)).unwrap();
                    }
                    drop(histogram);
                    partial.drain(..whole);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let histogram = histogram.lock().unwrap();
        let mut report = format!("dC {}\n", cpu_us() - cpu_connected);
        for value in histogram.iter_recorded() {
            report.push_str(&format!("{} {}\n", value.value_iterated_to(), value.count_at_value()));
        }
        stdout.write_all(report.as_bytes()).unwrap();
        stdout.flush().unwrap();
    });
}
