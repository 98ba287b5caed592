//! native/memcopy.c, which is memcpy and memmove in the static musl binary, checked against
//! Rust's own copies at every length up to a few hundred bytes, every alignment, and every
//! overlap (both directions) a caller can hand memmove. x86_64 only, where build.rs builds it.
#![cfg(target_arch = "x86_64")]

use std::ffi::c_void;

// Linked into the goaround library; naming the crate links it here.
extern crate goaround;

extern "C" {
    fn goaround_memcpy(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
    fn goaround_memmove(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
}

/// Distinct, non-periodic bytes, so a misplaced byte shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

#[test]
fn memcpy_copies_every_length_and_alignment() {
    let src = pattern(600);
    for len in (0..=200).chain([255, 256, 257, 511, 512, 513]) {
        for src_at in 0..8 {
            for dst_at in 0..8 {
                let mut dst = vec![0xA5u8; 600 + 16];
                let returned = unsafe {
                    goaround_memcpy(
                        dst.as_mut_ptr().add(dst_at).cast(),
                        src.as_ptr().add(src_at).cast(),
                        len,
                    )
                };
                assert_eq!(returned, unsafe { dst.as_mut_ptr().add(dst_at) }.cast());
                assert_eq!(
                    &dst[dst_at..dst_at + len],
                    &src[src_at..src_at + len],
                    "len {len}"
                );
                assert!(
                    dst[..dst_at].iter().all(|&b| b == 0xA5),
                    "before, len {len}"
                );
                assert!(
                    dst[dst_at + len..].iter().all(|&b| b == 0xA5),
                    "after, len {len}"
                );
            }
        }
    }
}

#[test]
fn memmove_handles_every_overlap() {
    for len in (0..=140).chain([255, 256, 300]) {
        for shift in 0..=len.min(80) + 1 {
            for forward in [true, false] {
                let original = pattern(len + shift + 8);
                let (from, to) = if forward { (shift, 0) } else { (0, shift) };
                let mut want = original.clone();
                want.copy_within(from..from + len, to);
                let mut got = original.clone();
                let base = got.as_mut_ptr();
                unsafe { goaround_memmove(base.add(to).cast(), base.add(from).cast(), len) };
                assert_eq!(got, want, "len {len} shift {shift} forward {forward}");
            }
        }
    }
}
