//! Fixed-size byte buffers, reused through a per-loop pool.
//!
//! A [`Buf`] is a boxed slice with a window `start..end` of bytes waiting to be used: sockets
//! read into the spare room after `end`, and consumers take from `start`. Buffers are
//! zeroed once when first allocated and recycled afterwards, so reads never touch
//! uninitialised memory and a request costs no allocation. Idle connections give their
//! buffers back to the [`BufferPool`]: 10,000 idle keep-alive connections cost sockets, not
//! buffers.

use std::time::{Duration, Instant};

/// Bytes of a relay buffer: one response head plus body, or a request body's slice.
pub(crate) const BUF_BYTES: usize = 64 * 1024;

/// Buffers kept for reuse per loop; beyond this they are freed at once.
const POOL_MAX: usize = 256;

pub(crate) struct Buf {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf {
            data: vec![0; BUF_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The bytes waiting.
    pub(crate) fn data(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Room after the waiting bytes.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        &mut self.data[self.end..]
    }

    pub(crate) fn spare_len(&self) -> usize {
        self.data.len() - self.end
    }

    /// `n` bytes were written into [`spare`](Self::spare).
    pub(crate) fn filled(&mut self, n: usize) {
        self.end += n;
        debug_assert!(self.end <= self.data.len());
    }

    /// `n` bytes at the front were used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Appends as much of `bytes` as fits; returns how much.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> usize {
        if self.spare_len() < bytes.len() {
            self.compact();
        }
        let n = bytes.len().min(self.spare_len());
        self.data[self.end..self.end + n].copy_from_slice(&bytes[..n]);
        self.end += n;
        n
    }

    /// Moves the waiting bytes to the front, so that all free room is spare room.
    pub(crate) fn compact(&mut self) {
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Starts the window at `at` with nothing in it: the room before it stays free for a
    /// head that is written later in front of bytes read after it.
    pub(crate) fn reset_at(&mut self, at: usize) {
        self.start = at;
        self.end = at;
    }

    /// The whole underlying slice and the window, for in-place rewriting.
    pub(crate) fn raw_mut(&mut self) -> (&mut [u8], &mut usize, &mut usize) {
        (&mut self.data, &mut self.start, &mut self.end)
    }
}

/// Recycled buffers of one loop.
///
/// Buffers are freed only when the pool shows they were not needed: [`sweep`](Self::sweep)
/// frees as many as stayed idle through a whole [`UNUSED_WINDOW`] (the low-water mark of the
/// free list). Steady traffic then recycles the same buffers and never allocates, while the
/// buffers of a burst go back to the allocator one window after it. Freeing to a fixed size
/// instead (the number of connections, say) freed and reallocated buffers every second under
/// steady load: each allocation zeroes 64 KiB, and the churn scattered the survivors over
/// more of the allocator's pages, so RSS crept up for the first minute.
#[derive(Default)]
pub(crate) struct BufferPool {
    free: Vec<Buf>,
    /// The fewest buffers the free list held since the window started.
    low: usize,
    /// When the current window ends; `None` until the first sweep.
    window_end: Option<Instant>,
}

/// How long a buffer must stay unused in the pool before it is freed.
pub(crate) const UNUSED_WINDOW: Duration = Duration::from_secs(10);

impl BufferPool {
    pub(crate) fn take(&mut self) -> Buf {
        match self.free.pop() {
            Some(mut buf) => {
                self.low = self.low.min(self.free.len());
                buf.clear();
                buf
            }
            None => {
                self.low = 0;
                Buf::new()
            }
        }
    }

    pub(crate) fn give(&mut self, buf: Buf) {
        if self.free.len() < POOL_MAX {
            self.free.push(buf);
        }
    }

    /// At the end of each window, frees the buffers that stayed in the pool all through it.
    pub(crate) fn sweep(&mut self, now: Instant) {
        let Some(end) = self.window_end else {
            self.start_window(now);
            return;
        };
        if now < end {
            return;
        }
        let unused = self.low.min(self.free.len());
        if unused > 0 {
            self.free.truncate(self.free.len() - unused);
            self.free.shrink_to_fit();
        }
        self.start_window(now);
    }

    fn start_window(&mut self, now: Instant) {
        self.low = self.free.len();
        self.window_end = Some(now + UNUSED_WINDOW);
    }

    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_consume_and_compact() {
        let mut pool = BufferPool::default();
        let mut buf = pool.take();
        assert_eq!(buf.push(b"hello world"), 11);
        buf.consume(6);
        assert_eq!(buf.data(), b"world");
        buf.compact();
        assert_eq!(buf.raw_mut().1, &mut 0);
        assert_eq!(buf.data(), b"world");
        buf.consume(5);
        assert!(buf.is_empty());
        assert_eq!(buf.spare_len(), BUF_BYTES, "empty resets to the front");
        pool.give(buf);
        assert_eq!(pool.idle(), 1);
        let again = pool.take();
        assert!(again.is_empty());
    }

    /// Takes `n` buffers and gives them back: `n` connections busy at once.
    fn busy(pool: &mut BufferPool, n: usize) {
        let bufs: Vec<Buf> = (0..n).map(|_| pool.take()).collect();
        for buf in bufs {
            pool.give(buf);
        }
    }

    #[test]
    fn steady_use_keeps_its_buffers_and_a_burst_goes_after_a_quiet_window() {
        let t0 = Instant::now();
        let mut pool = BufferPool::default();
        pool.sweep(t0);
        busy(&mut pool, 40);
        assert_eq!(pool.idle(), 40);
        // Every window needs 40 at its peak: nothing is freed, whatever the sweeps in between.
        for w in 1..=3 {
            pool.sweep(t0 + UNUSED_WINDOW * w - Duration::from_millis(1));
            busy(&mut pool, 40);
            pool.sweep(t0 + UNUSED_WINDOW * w);
            assert_eq!(pool.idle(), 40, "window {w}");
        }
        // A burst of 200, then a window with a peak of 30: the 170 never used are freed.
        busy(&mut pool, 200);
        pool.sweep(t0 + UNUSED_WINDOW * 4);
        assert_eq!(pool.idle(), 200, "the burst's window used them all");
        busy(&mut pool, 30);
        pool.sweep(t0 + UNUSED_WINDOW * 5);
        assert_eq!(pool.idle(), 30);
        // A quiet window frees the rest.
        pool.sweep(t0 + UNUSED_WINDOW * 6);
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn the_pool_keeps_at_most_pool_max() {
        let mut pool = BufferPool::default();
        busy(&mut pool, POOL_MAX + 5);
        assert_eq!(pool.idle(), POOL_MAX);
    }

    #[test]
    fn push_stops_when_full() {
        let mut buf = BufferPool::default().take();
        let big = vec![7u8; BUF_BYTES + 10];
        assert_eq!(buf.push(&big), BUF_BYTES);
        assert_eq!(buf.push(b"x"), 0);
        buf.consume(1);
        assert_eq!(buf.push(b"x"), 1, "compaction makes room");
    }

    #[test]
    fn reset_at_leaves_head_room() {
        let mut buf = BufferPool::default().take();
        buf.reset_at(512);
        buf.spare()[..3].copy_from_slice(b"abc");
        buf.filled(3);
        assert_eq!(buf.data(), b"abc");
        assert_eq!(*buf.raw_mut().1, 512);
    }
}
