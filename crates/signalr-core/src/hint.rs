//! Cache hints for the fan-out loop. Not part of the public contract: the names here may change
//! in any release; they are public only so that the `signalr` crate's connection can implement
//! [`crate::HubConnection`]'s hidden `prefetch` method.
//!
//! A broadcast touches the state of every receiver once, and with thousands of receivers that
//! state is rarely in the CPU cache: each receiver costs a few memory round trips one after the
//! other. Asking the CPU to load the state of a receiver a few places ahead, while the current
//! one is served, overlaps those round trips. The hints never change what a program does.

/// What a fan-out asks a connection to load, in the order it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefetchStep {
    /// The connection's own state: its lock, queue header and the addresses it will touch next.
    State,
    /// What the state points to: the queue slot the next message goes to and the writer task
    /// that a send wakes.
    Targets,
}

/// Hints the CPU to load the `lines` cache lines from `ptr` into its cache.
///
/// Never faults, whatever `ptr` points to; does nothing on targets without a prefetch
/// instruction in stable Rust. The same as `signalr_connections::prefetch::prefetch_lines`,
/// which this crate cannot depend on (it would pull in the HTTP stack).
#[inline(always)]
pub fn prefetch_lines<T: ?Sized>(ptr: *const T, lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = ptr as *const u8 as *const i8;
        for line in 0..lines {
            // `wrapping_add`: the address is only a hint and is never dereferenced.
            #[allow(unused_unsafe)]
            // SAFETY: prefetch is a hint; it does not access memory architecturally and cannot
            // fault, whatever the address. SSE is part of the x86_64 baseline.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(line * 64))
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ptr, lines);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hint never touches memory: null, dangling and unmapped addresses are all fine.
    #[test]
    fn any_address_is_a_valid_hint() {
        prefetch_lines(std::ptr::null::<u8>(), 4);
        prefetch_lines(usize::MAX as *const u8, 2);
        prefetch_lines(std::ptr::dangling::<u64>(), 1);
        let value = [1u8; 64];
        prefetch_lines(&value, 1);
        assert_eq!(value, [1u8; 64]);
    }
}
