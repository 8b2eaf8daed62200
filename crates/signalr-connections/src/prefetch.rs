//! Cache hints for fan-out loops.
//!
//! A broadcast touches the state of every receiver once, and with thousands of receivers that
//! state is rarely in the CPU cache: each receiver costs a few memory round trips one after the
//! other. Asking the CPU to load the state of a receiver a few places ahead, while the current
//! one is served, overlaps those round trips. The hints never change what a program does.

/// Hints the CPU to load the `lines` cache lines from `ptr` into its cache.
///
/// Never faults, whatever `ptr` points to; does nothing on targets without a prefetch
/// instruction in stable Rust. `signalr_core::hint::prefetch_lines` is the same ten lines: the
/// connection layer knows nothing of hubs and the hub core carries no HTTP, so neither depends
/// on the other (docs/decisions/0015-lifetime-manager-core.md); change both together.
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

/// What a fan-out asks a connection to load, in the order it asks: a connection's own state
/// first, what that state points to a few receivers later (when the state is cached and can be
/// read without waiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefetchStep {
    /// The connection's own state: its lock, queue header and the addresses it will touch next.
    State,
    /// What the state points to: the queue slot the next message goes to and the writer task
    /// that a send wakes.
    Targets,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hint never touches memory: null, dangling, freed and unmapped addresses are all fine.
    #[test]
    fn any_address_is_a_valid_hint() {
        prefetch_lines(std::ptr::null::<u8>(), 4);
        prefetch_lines(usize::MAX as *const u8, 2);
        prefetch_lines(std::ptr::dangling::<u64>(), 1);
        let freed = Box::into_raw(Box::new([0u8; 256]));
        // SAFETY: `freed` came from `Box::into_raw` just above and is dropped once.
        drop(unsafe { Box::from_raw(freed) });
        prefetch_lines(freed, 4);
        let value = [1u8; 64];
        prefetch_lines(&value, 1);
        assert_eq!(value, [1u8; 64]);
    }
}
