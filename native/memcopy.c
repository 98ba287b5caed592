/*
 * memcpy and memmove for the static musl build.
 *
 * musl's x86_64 memcpy is `rep movsq` with byte loops for alignment and tail. Its start-up
 * cost dominates the copies a proxy makes by the dozen per request (field names and values,
 * a status line, a host name: 2 to 60 bytes), and it was a quarter of goaround's user time
 * on a small request. These copy up to 64 bytes with a few overlapping unaligned loads and
 * stores, and hand longer copies to `rep movsb`, which CPUs with ERMSB/FSRM (every x86_64
 * of the last decade) run at full speed.
 *
 * The functions are built under their goaround_ names on every x86_64 target (`rep movsb` is
 * x86), so tests/memcopy.rs exercises them with glibc too; with GOAROUND_REPLACE_LIBC they are also memcpy and memmove, which the
 * linker then takes instead of libc.a's (build.rs defines it for x86_64 musl only; glibc's
 * own are better than these).
 *
 * Built with -ffreestanding -fno-builtin: the compiler must not turn these loops back into
 * calls to memcpy. __builtin_memcpy of a constant size is still expanded inline into plain
 * loads and stores.
 */
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t lo, hi;
} block16;

/* W to 2*W bytes as two W-byte words, the first from the start, the last ending at the end
 * (they overlap when n < 2*W). Both loads happen before either store. */
#define COPY_ENDS(T, d, s, n)                                                                 \
    do {                                                                                      \
        T head_, tail_;                                                                       \
        __builtin_memcpy(&head_, (s), sizeof(T));                                             \
        __builtin_memcpy(&tail_, (s) + (n) - sizeof(T), sizeof(T));                           \
        __builtin_memcpy((d), &head_, sizeof(T));                                             \
        __builtin_memcpy((d) + (n) - sizeof(T), &tail_, sizeof(T));                           \
    } while (0)

/* 0 to 16 bytes. Every load happens before any store, so overlapping ranges are fine. */
static inline void copy_upto16(unsigned char *d, const unsigned char *s, size_t n)
{
    if (n >= 8)
        COPY_ENDS(uint64_t, d, s, n);
    else if (n >= 4)
        COPY_ENDS(uint32_t, d, s, n);
    else if (n >= 2)
        COPY_ENDS(uint16_t, d, s, n);
    else if (n == 1)
        *d = *s;
}

/* 17 to 64 bytes that do not overlap: 16-byte blocks, the last one ending at the end. */
static inline void copy_17_to_64(unsigned char *d, const unsigned char *s, size_t n)
{
    block16 last;
    __builtin_memcpy(&last, s + n - 16, 16);
    for (size_t i = 0; i + 16 < n; i += 16) {
        block16 b;
        __builtin_memcpy(&b, s + i, 16);
        __builtin_memcpy(d + i, &b, 16);
    }
    __builtin_memcpy(d + n - 16, &last, 16);
}

/* Any length, forwards, byte by byte in effect: right also when d < s and they overlap. */
static inline void copy_forward(unsigned char *d, const unsigned char *s, size_t n)
{
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

/* Any length, backwards: right when d > s and they overlap. Each 8-byte load precedes its
 * store and lies above every byte stored before it. */
static void copy_backward(unsigned char *d, const unsigned char *s, size_t n)
{
    while (n >= 8) {
        uint64_t w;
        n -= 8;
        __builtin_memcpy(&w, s + n, 8);
        __builtin_memcpy(d + n, &w, 8);
    }
    while (n > 0) {
        n -= 1;
        d[n] = s[n];
    }
}

void *goaround_memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (n <= 16)
        copy_upto16(d, s, n);
    else if (n <= 64)
        copy_17_to_64(d, s, n);
    else
        copy_forward(d, s, n);
    return dst;
}

void *goaround_memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    uintptr_t to = (uintptr_t)d, from = (uintptr_t)s;
    if (n <= 16) {
        copy_upto16(d, s, n);
    } else if (to - from >= n && from - to >= n) {
        /* Disjoint. */
        goaround_memcpy(d, s, n);
    } else if (to < from) {
        copy_forward(d, s, n);
    } else if (to > from) {
        copy_backward(d, s, n);
    }
    return dst;
}

#ifdef GOAROUND_REPLACE_LIBC
void *memcpy(void *restrict dst, const void *restrict src, size_t n)
    __attribute__((alias("goaround_memcpy")));
void *memmove(void *dst, const void *src, size_t n) __attribute__((alias("goaround_memmove")));
#endif
