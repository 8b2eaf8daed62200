//! A bounded pool for password verifications. Argon2id with the default parameters needs
//! 19 MiB per hash; run on the runtime's blocking pool, a flood of sign-ins ran one hash per
//! request at once (hundreds of threads, each with its own allocator arena keeping the freed
//! memory). Here a fixed set of threads (`Security:PasswordHashing:MaxConcurrency`) each own one
//! reusable Argon2 memory buffer, at most `QueueLimit` verifications wait, and anything past
//! that is refused at once ([`PoolBusy`]), so memory stays at about
//! `MaxConcurrency × 19 MiB` whatever the load, and other requests keep their threads. A worker
//! idle for 5 s frees its buffer and has the allocator return it to the system.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// The largest Argon2 memory cost accepted from a stored hash (256 MiB): a hash asking for more
/// is treated as not matching rather than allocating without bound.
const MAX_MEMORY_KIB: u32 = 256 * 1024;
/// A worker idle this long frees its work area, so memory returns after a burst.
const IDLE_RELEASE: Duration = Duration::from_secs(5);

/// The pool is full: every worker is busy and the queue is at its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks are waiting; try again shortly")]
pub struct PoolBusy;

struct Job {
    hash: String,
    password: String,
    reply: oneshot::Sender<bool>,
    /// Held until the job is done: the admission semaphore counts queued plus running jobs.
    _admitted: OwnedSemaphorePermit,
}

struct Shared {
    running: AtomicUsize,
    peak: AtomicUsize,
}

/// A fixed set of password-verification threads with a bounded queue; cheap to clone.
#[derive(Clone)]
pub struct PasswordPool {
    admission: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    workers: usize,
}

impl PasswordPool {
    /// Starts `workers` threads; at most `queue` verifications wait beyond those running.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let shared = Arc::new(Shared { running: AtomicUsize::new(0), peak: AtomicUsize::new(0) });
        for i in 0..workers {
            let rx = rx.clone();
            let shared = shared.clone();
            let spawned = std::thread::Builder::new().name(format!("password-hash-{i}")).spawn(move || worker(&rx, &shared));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-hashing thread");
            }
        }
        Self { admission: Arc::new(Semaphore::new(workers + queue)), jobs: tx, shared, workers }
    }

    /// Whether `password` matches the PHC string `hash`, or [`PoolBusy`] when the pool and its
    /// queue are full.
    pub async fn verify(&self, hash: String, password: String) -> Result<bool, PoolBusy> {
        let admitted = self.admission.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("diquis_password_checks_refused_total").increment(1);
            PoolBusy
        })?;
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job { hash, password, reply, _admitted: admitted }).is_err() {
            return Err(PoolBusy);
        }
        // A worker that panicked dropped the reply: not a match.
        Ok(answer.await.unwrap_or(false))
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The most verifications that ran at the same moment since the start.
    pub fn peak_running(&self) -> usize {
        self.shared.peak.load(Ordering::Relaxed)
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>, shared: &Shared) {
    // Grown to the largest memory cost seen, then reused for every hash on this thread.
    let mut memory: Vec<Block> = Vec::new();
    loop {
        // One worker at a time waits on the channel; the others wait for the lock.
        let next = rx.lock().recv_timeout(IDLE_RELEASE);
        let job = match next {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !memory.is_empty() {
                    memory = Vec::new();
                    return_freed_memory();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let now = shared.running.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak.fetch_max(now, Ordering::SeqCst);
        metrics::gauge!("diquis_password_checks_running").set(now as f64);
        let matched = verify_with(&mut memory, &job.hash, &job.password);
        let now = shared.running.fetch_sub(1, Ordering::SeqCst) - 1;
        metrics::gauge!("diquis_password_checks_running").set(now as f64);
        let _ = job.reply.send(matched);
    }
}

/// Asks the allocator to give freed memory back to the system. glibc keeps large freed blocks
/// in its arenas once its adaptive mmap threshold has grown past them; `malloc_trim` releases
/// the free pages of every arena.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only walks glibc's own allocator state; any pad value is valid.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Verifies `password` against the PHC string `hash` using `memory` as Argon2's work area.
pub fn verify_with(memory: &mut Vec<Block>, hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return false };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks]).is_err() {
        return false;
    }
    constant_time_eq(&out, expected)
}

/// Compares in constant time (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_library() {
        let h = crate::auth::password::hash("Secret123");
        let mut memory = Vec::new();
        assert!(verify_with(&mut memory, &h, "Secret123"));
        assert!(!verify_with(&mut memory, &h, "secret123"));
        assert!(!verify_with(&mut memory, "not a hash", "Secret123"));
        // Other parameters, on the same buffer.
        use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
        let small = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(1024, 1, 1, None).unwrap())
            .hash_password(b"pw123456", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify_with(&mut memory, &small, "pw123456"));
        assert!(!verify_with(&mut memory, &small, "pw1234567"));
        let huge = small.replace("m=1024", "m=4000000");
        assert!(!verify_with(&mut memory, &huge, "pw123456"));
    }

    #[tokio::test]
    async fn a_full_pool_refuses() {
        let pool = PasswordPool::new(1, 1);
        let h = crate::auth::password::hash("Secret123");
        let calls: Vec<_> = (0..8).map(|_| pool.verify(h.clone(), "Secret123".into())).collect();
        let results = futures_util::future::join_all(calls).await;
        assert!(results.iter().filter(|r| **r == Err(PoolBusy)).count() >= 6, "{results:?}");
        assert!(results.contains(&Ok(true)));
        assert_eq!(pool.peak_running(), 1);
        // Room again afterwards.
        assert_eq!(pool.verify(h, "Secret123".into()).await, Ok(true));
    }
}
