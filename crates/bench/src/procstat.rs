//! Server resource readings from /proc: resident memory and CPU time of the server processes.

use std::fs;

use serde::Serialize;
use thiserror::Error;

/// A /proc file that could not be read or understood.
#[derive(Debug, Error)]
pub enum ProcError {
    /// The file could not be read (the process is gone, or no permission).
    #[error("cannot read /proc/{pid}/{file}: {source}")]
    Read {
        /// The process id.
        pid: u32,
        /// `status` or `stat`.
        file: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file did not hold the expected field.
    #[error("/proc/{pid}/{file} has no readable {field}")]
    Parse {
        /// The process id.
        pid: u32,
        /// `status` or `stat`.
        file: &'static str,
        /// The field looked for.
        field: &'static str,
    },
}

/// One reading of the server processes, summed over all of them.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Sample {
    /// Resident set size, KiB.
    pub rss_kb: u64,
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
}

/// `VmRSS` in KiB from the text of `/proc/<pid>/status`.
pub fn parse_rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime in clock ticks from the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) may hold spaces and parentheses, so fields are counted from the
/// last `)`: utime and stime are fields 14 and 15 overall, the 12th and 13th after it.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Reads one process.
pub fn read(pid: u32) -> Result<Sample, ProcError> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).map_err(|source| ProcError::Read { pid, file: "status", source })?;
    let rss_kb = parse_rss_kb(&status).ok_or(ProcError::Parse { pid, file: "status", field: "VmRSS" })?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|source| ProcError::Read { pid, file: "stat", source })?;
    let ticks = parse_cpu_ticks(&stat).ok_or(ProcError::Parse { pid, file: "stat", field: "utime/stime" })?;
    Ok(Sample { rss_kb, cpu_seconds: ticks as f64 / clock_ticks_per_second() })
}

/// Reads and sums all `pids`; `None` when there are none.
pub fn read_all(pids: &[u32]) -> Result<Option<Sample>, ProcError> {
    if pids.is_empty() {
        return Ok(None);
    }
    let mut total = Sample::default();
    for &pid in pids {
        let one = read(pid)?;
        total.rss_kb += one.rss_kb;
        total.cpu_seconds += one.cpu_seconds;
    }
    Ok(Some(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_status() {
        let status = "Name:\tsignalr-testser\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_kb(status), Some(12345));
        assert_eq!(parse_rss_kb("Name:\tx\n"), None);
    }

    #[test]
    fn cpu_ticks_survive_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1000 1 1";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn reads_this_process_and_rejects_a_missing_one() {
        let me = read(std::process::id()).unwrap();
        assert!(me.rss_kb > 0);
        assert!(matches!(read(u32::MAX), Err(ProcError::Read { .. })));
        assert_eq!(read_all(&[]).unwrap(), None);
    }
}
