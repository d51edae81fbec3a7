//! A small pool of large `f32` buffers reused between calls of the fused ops.
//!
//! Large allocations come straight from the OS as fresh pages, and touching them for the first
//! time costs a page fault per 4 KiB: for the tens of megabytes an L-RNN pair keeps between its
//! forward and backward passes that is several milliseconds per call. Buffers handed back here are
//! reused by the next call instead. The contents of a taken buffer are stale: callers overwrite
//! every element before reading it.

use std::sync::Mutex;

/// At most this many buffers are kept.
const MAX_KEPT: usize = 16;
/// Buffers smaller than this are not worth pooling.
const MIN_LEN: usize = 1 << 16;

static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of `len` elements with unspecified (stale) contents.
pub fn take(len: usize) -> Vec<f32> {
    if len >= MIN_LEN {
        if let Ok(mut pool) = POOL.lock() {
            let best = pool
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= len && v.capacity() <= 2 * len)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            if let Some(i) = best {
                let mut v = pool.swap_remove(i);
                v.resize(len, 0.0);
                v.truncate(len);
                return v;
            }
        }
    }
    vec![0.0; len]
}

/// A zero-filled buffer of `len` elements.
pub fn take_zeroed(len: usize) -> Vec<f32> {
    let mut v = take(len);
    v.fill(0.0);
    v
}

/// Hands a buffer back for reuse.
pub fn give(v: Vec<f32>) {
    if v.capacity() < MIN_LEN {
        return;
    }
    if let Ok(mut pool) = POOL.lock() {
        if pool.len() >= MAX_KEPT {
            // Keep the larger ones: drop the smallest.
            if let Some((i, _)) = pool.iter().enumerate().min_by_key(|(_, b)| b.capacity()) {
                if pool[i].capacity() < v.capacity() {
                    pool.swap_remove(i);
                } else {
                    return;
                }
            }
        }
        pool.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_sized() {
        let a = take(MIN_LEN * 3);
        let ptr = a.as_ptr();
        give(a);
        let b = take(MIN_LEN * 3);
        assert_eq!(b.len(), MIN_LEN * 3);
        assert_eq!(b.as_ptr(), ptr, "the pooled buffer is reused");
        let z = take_zeroed(MIN_LEN);
        assert!(z.iter().all(|v| *v == 0.0));
        give(b);
        give(z);
    }
}
