//! What the `diquis` binary writes, as an operator's log pipeline meets it: JSON lines when JSON
//! is chosen (stdout and stderr), no colour codes into a pipe, and a log pipe that nobody reads
//! stalls neither requests nor shutdown.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Starts the binary in a fresh directory on a free port with `vars`.
fn spawn(dir: &std::path::Path, vars: &[(&str, &str)], stderr: Stdio) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_diquis"));
    cmd.current_dir(dir).args(["--urls", "http://127.0.0.1:0"]).env_remove("RUST_LOG").stdout(Stdio::piped()).stderr(stderr);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Reads stdout on a thread: the lines up to and including the one `done` accepts (panics if
/// the process says nothing of the kind within a minute); the rest is drained, as a terminal would.
fn stdout_until(child: &mut Child, done: fn(&str) -> bool) -> Vec<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("no end of start-up on stdout: {lines:?}"));
        lines.push(line.clone());
        if done(&line) {
            std::thread::spawn(move || rx.iter().for_each(drop));
            return lines;
        }
    }
}

fn sigterm(child: &Child) {
    assert!(Command::new("kill").arg("-15").arg(child.id().to_string()).status().unwrap().success());
}

/// Waits for the process to end (a minute at most) and returns whether it exited with 0.
fn exits_cleanly(child: &mut Child) -> bool {
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("the process did not stop within a minute of SIGTERM");
}

fn url_of(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| {
            let message = serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["message"].as_str().map(str::to_owned));
            message.unwrap_or_else(|| l.clone()).strip_prefix("Now listening on: ").map(str::to_owned)
        })
        .expect("a 'Now listening on' line")
}

#[test]
fn json_logging_writes_only_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(dir.path(), &[("Logging__Format", "json")], Stdio::piped());
    let lines = stdout_until(&mut child, |l| l.contains("Application started"));
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["message"].is_string() && v["level"].is_string() && v["timestamp"].is_string(), "{line}");
    }
    let url = url_of(&lines);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(lines.iter().any(|l| l.contains("\"password\"")), "the generated password is announced: {lines:?}");
    sigterm(&child);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(exits_cleanly(&mut child));
    assert!(stderr.lines().count() >= 2, "start-up and shutdown are logged: {stderr}");
    for line in stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}

#[test]
fn text_logs_into_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(dir.path(), &[], Stdio::piped());
    stdout_until(&mut child, |l| l.contains("Application started"));
    sigterm(&child);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(exits_cleanly(&mut child));
    assert!(stderr.contains("INFO"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "escape codes in a pipe: {stderr:?}");
}

#[test]
fn a_log_pipe_nobody_reads_stalls_neither_requests_nor_shutdown() {
    use std::io::Write;
    // stderr is a pipe that is already full (64 KiB, Linux's default capacity) and never read:
    // every write to it would block.
    let (_unread, mut full) = std::io::pipe().unwrap();
    full.write_all(&vec![b'.'; 65_536]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(dir.path(), &[("Logging__LogLevel__Default", "Debug")], Stdio::from(full));
    let lines = stdout_until(&mut child, |l| l.contains("Application started"));
    let url = url_of(&lines);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        for _ in 0..20 {
            // Wrong passwords: each is logged.
            let r = client
                .post(format!("{url}/api/tokens"))
                .json(&serde_json::json!({"email": "nobody@example.com", "password": "wrong"}))
                .send()
                .await
                .expect("answered while the log pipe is full");
            assert!(r.status().is_client_error(), "{}", r.status());
        }
    });
    sigterm(&child);
    assert!(exits_cleanly(&mut child), "graceful exit with a full log pipe");
}
