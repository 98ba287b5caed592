//! Fixed-size byte buffers, reused through a per-loop pool.
//!
//! A [`Buf`] is a boxed slice with a window `start..end` of bytes waiting to be used: sockets
//! read into the spare room after `end`, and consumers take from `start`. Buffers are
//! zeroed once when first allocated and recycled afterwards, so reads never touch
//! uninitialised memory and a request costs no allocation. Idle connections give their
//! buffers back to the [`BufferPool`]: 10,000 idle keep-alive connections cost sockets, not
//! buffers.

/// Bytes of a relay buffer: one response head plus body, or a request body's slice.
pub(crate) const BUF_BYTES: usize = 64 * 1024;

/// Buffers kept for reuse per loop; beyond this they are freed (after a burst).
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
#[derive(Default)]
pub(crate) struct BufferPool {
    free: Vec<Buf>,
}

impl BufferPool {
    pub(crate) fn take(&mut self) -> Buf {
        match self.free.pop() {
            Some(mut buf) => {
                buf.clear();
                buf
            }
            None => Buf::new(),
        }
    }

    pub(crate) fn give(&mut self, buf: Buf) {
        if self.free.len() < POOL_MAX {
            self.free.push(buf);
        }
    }

    /// Frees buffers beyond `keep` (after a burst of connections).
    pub(crate) fn trim(&mut self, keep: usize) {
        self.free.truncate(keep);
        self.free.shrink_to_fit();
    }

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
