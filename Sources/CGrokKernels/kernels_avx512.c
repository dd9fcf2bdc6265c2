// AVX-512 (F, BW, VL) matmul and read kernels (x86_64 only; chosen at run time by dispatch.c).
// The other kernels of this variant are the AVX2 ones: they are not on the hot path.
//
// Decode streams weights from memory, and one core reaches its share of the bandwidth only with
// many reads in flight. Rows go several at a time (concurrent streams, each x load serving the
// whole group) and are prefetched ahead. On Zen 5 what limits a core is less the arithmetic than
// how many vector operations wait on each cache line still in flight: a loop doing one op per
// 64-byte line streams at ~95% of the read bandwidth, one doing two FMAs per line at ~83%, even
// though both run 3× faster from cache. Hence, measured for rows of 4096–32768 columns:
//  - F32 (one FMA per line): 4 rows, no software prefetch (the hardware prefetcher suffices).
//  - F16/BF16: 4 rows, two lines per row per step, prefetch 2 KiB ahead; near the end of the rows
//    the prefetches run on into the next group's rows, so a group starts with its data in flight
//    (70–75% → 77–84% of the 1-thread read bandwidth, ~80% → 86–96% on 2 threads; 1–16 rows,
//    1–4 lines per step, 0.5–8 KiB ahead and the T1/NTA hints measured no better).
//  - Q8_0: 16 rows, prefetch 512 B ahead. Its conversions make it nearly compute-bound (~50 GB/s
//    from cache against 42 GB/s from memory on one core): ~80% of the read bandwidth.
//  - Q4_0 is compute-bound: see dot_q4_0 below (1.4–1.6× the previous per-block kernel).
#if defined(__x86_64__)
#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include "isa.h"

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)

#define INLINE static inline __attribute__((always_inline))
/// Per dtype: rows per group (at most GROUP) and prefetch distance in bytes (0: none), as measured
/// fastest on Zen 5 (1 and 2 threads) for rows of 4096–32768 columns.
enum { GROUP = 16 };
enum { G_F32 = 4, PF_F32 = 0 };
enum { G_F16 = 4, PF_F16 = 2048 };
enum { G_BF16 = 4, PF_BF16 = 2048 };
enum { G_Q8_0 = 16, PF_Q8_0 = 512 };
enum { G_Q4_0 = 8, PF_Q4_0 = 1024 };

INLINE void prefetch(const uint8_t *p, int distance) {
    if (distance) _mm_prefetch((const char *)p + distance, _MM_HINT_T0);
}

// Loads of 16 weights as f32, whole or under a mask (masked-off lanes are zero and not read).
INLINE __m512 load16_f32(const uint8_t *p) { return _mm512_loadu_ps(p); }
INLINE __m512 mask16_f32(__mmask16 m, const uint8_t *p) { return _mm512_maskz_loadu_ps(m, p); }
INLINE __m512 load16_f16(const uint8_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
INLINE __m512 mask16_f16(__mmask16 m, const uint8_t *p) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
INLINE __m512 widen_bf16(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
INLINE __m512 load16_bf16(const uint8_t *p) { return widen_bf16(_mm256_loadu_si256((const __m256i *)p)); }
INLINE __m512 mask16_bf16(__mmask16 m, const uint8_t *p) { return widen_bf16(_mm256_maskz_loadu_epi16(m, p)); }

/// F32 dot kernel: a cache line (16 columns) of every row of the group per step, one accumulator
/// per row, then a masked step for the tail.
INLINE void dot_f32(const uint8_t *const *rows, int R, const float *x, size_t cols, float *out) {
    __m512 acc[GROUP];
    for (int k = 0; k < R; k++) acc[k] = _mm512_setzero_ps();
    size_t c = 0;
    for (; c + 16 <= cols; c += 16) {
        __m512 xv = _mm512_loadu_ps(x + c);
        for (int k = 0; k < R; k++) {
            prefetch(rows[k] + 4 * c, PF_F32);
            acc[k] = _mm512_fmadd_ps(load16_f32(rows[k] + 4 * c), xv, acc[k]);
        }
    }
    if (c < cols) {
        __mmask16 m = (__mmask16)((1u << (cols - c)) - 1);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + c);
        for (int k = 0; k < R; k++) acc[k] = _mm512_fmadd_ps(mask16_f32(m, rows[k] + 4 * c), xv, acc[k]);
    }
    for (int k = 0; k < R; k++) out[k] = _mm512_reduce_add_ps(acc[k]);
}

/// Dot kernels of the 16-bit float types over R consecutive rows (row k at base + k * row_bytes):
/// two cache lines (64 columns) of every row per step, two accumulators per row, then 16-column
/// masked steps for the tail. Every line is prefetched PREFETCH bytes ahead; once that passes the
/// end of the row, the prefetch goes to the same row of the next group (R rows further on), which
/// the caller processes next. (Past the last row of the caller's range this only prefetches
/// memory that may be unused: prefetches never fault.)
#define DEFINE_HALF_DOT(name, PREFETCH)                                                           \
    INLINE void dot_##name(const uint8_t *base, int R, size_t row_bytes, const float *x,          \
                           size_t cols, float *out) {                                             \
        __m512 acc0[GROUP], acc1[GROUP];                                                          \
        for (int k = 0; k < R; k++) acc0[k] = acc1[k] = _mm512_setzero_ps();                      \
        const size_t len = 2 * cols, full = len / 128 * 128;                                      \
        /* steps [0, split) prefetch within the rows, [split, full) into the next group */        \
        const size_t split = full > (size_t)(PREFETCH) ? (full - (PREFETCH)) / 128 * 128 : 0;    \
        const uint8_t *ahead = base + (PREFETCH);                                                 \
        size_t pos = 0;                                                                           \
        for (int phase = 0; phase < 2; phase++) {                                                 \
            size_t end = phase ? full : split;                                                    \
            if (phase) ahead = base + (size_t)R * row_bytes - len + (PREFETCH);                   \
            for (; pos < end; pos += 128) {                                                       \
                const float *xc = x + pos / 2;                                                    \
                __m512 x0 = _mm512_loadu_ps(xc), x1 = _mm512_loadu_ps(xc + 16);                   \
                __m512 x2 = _mm512_loadu_ps(xc + 32), x3 = _mm512_loadu_ps(xc + 48);              \
                for (int k = 0; k < R; k++) {                                                     \
                    const uint8_t *p = base + k * row_bytes + pos;                                \
                    _mm_prefetch((const char *)ahead + k * row_bytes + pos, _MM_HINT_T0);         \
                    _mm_prefetch((const char *)ahead + k * row_bytes + pos + 64, _MM_HINT_T0);    \
                    acc0[k] = _mm512_fmadd_ps(load16_##name(p), x0, acc0[k]);                     \
                    acc1[k] = _mm512_fmadd_ps(load16_##name(p + 32), x1, acc1[k]);                \
                    acc0[k] = _mm512_fmadd_ps(load16_##name(p + 64), x2, acc0[k]);                \
                    acc1[k] = _mm512_fmadd_ps(load16_##name(p + 96), x3, acc1[k]);                \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        for (size_t c = full / 2; c < cols; c += 16) {                                            \
            size_t left = cols - c;                                                               \
            __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);         \
            __m512 xv = _mm512_maskz_loadu_ps(m, x + c);                                          \
            for (int k = 0; k < R; k++)                                                           \
                acc0[k] = _mm512_fmadd_ps(mask16_##name(m, base + k * row_bytes + 2 * c), xv, acc0[k]); \
        }                                                                                         \
        for (int k = 0; k < R; k++) out[k] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[k], acc1[k])); \
    }

DEFINE_HALF_DOT(f16, PF_F16)
DEFINE_HALF_DOT(bf16, PF_BF16)

/// Matmul over groups of G consecutive rows, then single rows, with a dot kernel of the
/// DEFINE_HALF_DOT form.
#define DEFINE_STREAM_MATMUL(name, DOT, G)                                                        \
    static void name(const uint8_t *w, size_t row_bytes, size_t cols, const float *x, size_t n,  \
                     float *y, size_t ldy, size_t r0, size_t r1) {                               \
        size_t r = r0;                                                                            \
        STREAM_GROUPS(DOT, G)                                                                     \
        STREAM_GROUPS(DOT, 1)                                                                     \
    }
#define STREAM_GROUPS(DOT, R)                                                                     \
    for (; r + (R) <= r1; r += (R))                                                               \
        for (size_t t = 0; t < n; t++) {                                                          \
            float out[R];                                                                         \
            DOT(w + r * row_bytes, (R), row_bytes, x + t * cols, cols, out);                      \
            for (int k = 0; k < (R); k++) y[t * ldy + r + k] = out[k];                            \
        }

/// The f16 scale d at the start of a block, broadcast.
INLINE __m512 block_scale(const uint8_t *block) {
    return _mm512_cvtph_ps(_mm256_set1_epi16((short)grok_load_u16(block)));
}

/// The 32 int8 quants of a Q8_0 block as two vectors of f32.
INLINE void q8_0_block(const uint8_t *qs, __m512 q[2]) {
    q[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)qs)));
    q[1] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16))));
}

/// The 32 quants of a Q4_0 block (nibbles minus 8) as two vectors of f32: low nibbles are
/// elements 0..15, high nibbles elements 16..31. A 16-entry table lookup (vpermps reads only the
/// low 4 bits of each index) turns a nibble straight into its f32 value minus 8.
INLINE void q4_0_block(const uint8_t *qs, __m512 q[2]) {
    const __m512 values = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)qs));
    q[0] = _mm512_permutexvar_ps(bytes, values);
    q[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(bytes, 4), values);
}

/// acc += d · (quants · x) for one block of 32 columns (x in x0, x1).
#define BLOCK_FMA(name, block, x0, x1, acc)                                                       \
    do {                                                                                          \
        __m512 q[2];                                                                              \
        name##_block((block) + 2, q);                                                             \
        __m512 s = _mm512_fmadd_ps(q[1], x1, _mm512_mul_ps(q[0], x0));                            \
        acc = _mm512_fmadd_ps(block_scale(block), s, acc);                                        \
    } while (0)

/// Q8_0 dot kernel: per block, the quants · x in f32, then scaled by d. A step is two blocks
/// (about a cache line) of every row of the group; each x block is loaded once per step for the
/// whole group, and the prefetches are issued during the step's first block.
INLINE void dot_q8_0(const uint8_t *const *rows, int R, const float *x, size_t cols, float *out) {
    __m512 acc[GROUP];
    for (int k = 0; k < R; k++) acc[k] = _mm512_setzero_ps();
    size_t blocks = cols / 32, b = 0;
    for (; b + 2 <= blocks; b += 2) {
        for (int j = 0; j < 2; j++) {
            __m512 x0 = _mm512_loadu_ps(x + 32 * (b + j)), x1 = _mm512_loadu_ps(x + 32 * (b + j) + 16);
            for (int k = 0; k < R; k++) {
                if (j == 0) prefetch(rows[k] + 34 * b, PF_Q8_0);
                BLOCK_FMA(q8_0, rows[k] + 34 * (b + j), x0, x1, acc[k]);
            }
        }
    }
    for (; b < blocks; b++) {
        __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
        for (int k = 0; k < R; k++) BLOCK_FMA(q8_0, rows[k] + 34 * b, x0, x1, acc[k]);
    }
    for (int k = 0; k < R; k++) out[k] = _mm512_reduce_add_ps(acc[k]);
}

// ---- Q4_0 ----
// Four blocks (72 bytes) of a row fill one vector of 64 quant bytes, block B in 128-bit lane B
// (one 2-source word permute of two overlapping loads). Dword L of lane B then holds quant bytes
// 4L..4L+3 of the block, i.e. 8 nibbles; nibble j (shifted down by 4j) indexes the 16-entry table
// of (q - 8) in f32, so 8 lookups give all 128 weights without widening each block separately.
// Nibble j of dword L of block B is column 32B + 4L + j/2 + 16(j%2): x is rearranged once per
// call to that order, 128 columns at a time, and kept per thread.

static pthread_key_t scratch_key;
static int scratch_ready;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void scratch_free(void *p) { free(p); }
static void scratch_init(void) { scratch_ready = pthread_key_create(&scratch_key, scratch_free) == 0; }
/// A 64-byte aligned buffer of at least `count` floats, owned by the calling thread (freed when
/// it exits), or NULL if it cannot be allocated.
static float *scratch(size_t count) {
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_ready) return NULL;
    size_t *s = pthread_getspecific(scratch_key);
    if (!s || s[0] < count) {
        pthread_setspecific(scratch_key, NULL);
        free(s);
        s = aligned_alloc(64, 64 + (count * sizeof(float) + 63) / 64 * 64);
        if (!s) return NULL;
        s[0] = count;
        if (pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    return (float *)((uint8_t *)s + 64);
}

/// x of every token rearranged for dot_q4_0 (whole 128-column chunks only; the rest of a row goes
/// block by block), or NULL when no chunk fits or no buffer could be had.
static const float *q4_0_rearrange(const float *x, size_t cols, size_t n) {
    size_t chunked = cols / 128 * 128;
    float *xs = chunked ? scratch(n * chunked) : NULL;
    if (!xs) return NULL;
    __m512i idx[8];
    for (int j = 0; j < 8; j++) {
        _Alignas(64) int v[16];
        for (int B = 0; B < 4; B++)
            for (int L = 0; L < 4; L++) v[4 * B + L] = 32 * B + 4 * L + j / 2 + 16 * (j % 2);
        idx[j] = _mm512_load_si512(v);
    }
    for (size_t t = 0; t < n; t++) {
        const float *src = x + t * cols;
        float *dst = xs + t * chunked;
        for (size_t c = 0; c < chunked; c += 128, src += 128, dst += 128)
            for (int j = 0; j < 8; j++) {
                // Lanes of block B come from columns 32B..32B+31 (a 2-source permute, which reads
                // the low 5 bits of the index: the column within the block).
                __m512 v = _mm512_permutex2var_ps(_mm512_loadu_ps(src), idx[j], _mm512_loadu_ps(src + 16));
                for (int B = 1; B < 4; B++)
                    v = _mm512_mask_blend_ps((__mmask16)(0xF << (4 * B)), v,
                                             _mm512_permutex2var_ps(_mm512_loadu_ps(src + 32 * B), idx[j],
                                                                    _mm512_loadu_ps(src + 32 * B + 16)));
                _mm512_store_ps(dst + 16 * j, v);
            }
    }
    return xs;
}

/// Q4_0 dot kernel over R consecutive rows: 4-block chunks with the rearranged x (xs; NULL: none),
/// prefetched and continued into the next group as DEFINE_HALF_DOT does, then the remaining blocks
/// one at a time with x.
INLINE void dot_q4_0(const uint8_t *base, int R, size_t row_bytes, const float *xs, const float *x,
                     size_t cols, float *out) {
    __m512 acc[GROUP];
    for (int k = 0; k < R; k++) acc[k] = _mm512_setzero_ps();
    const size_t blocks = cols / 32;
    size_t b = 0;
    if (xs) {
        const __m512 values = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
        // Words of a chunk, A = bytes 0..63, B = bytes 8..71 (words 32 + i of the permute are B's
        // word i, chunk word 4 + i): block B's quants are chunk words 9B+1 .. 9B+8, its scale
        // chunk word 9B.
        static const uint16_t quant_words[32] = {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17,
                                                 19, 20, 21, 22, 23, 24, 25, 26, 56, 57, 58, 59, 60, 61, 62, 63};
        static const uint16_t scale_words[32] = {0, 0, 0, 0, 9, 9, 9, 9, 18, 18, 18, 18, 27, 27, 27, 27};
        const __m512i qidx = _mm512_loadu_si512(quant_words), didx = _mm512_loadu_si512(scale_words);
        const size_t len = 18 * blocks, chunks = blocks / 4;
        size_t split = len > (size_t)PF_Q4_0 ? (len - PF_Q4_0) / 72 : 0;
        if (split > chunks) split = chunks;
        const uint8_t *ahead = base + PF_Q4_0;
#define Q4_0_CHUNK                                                                                \
        {                                                                                         \
            const float *xc = xs + 32 * b;                                                        \
            _Pragma("clang loop unroll(full)")                                                    \
            for (int k = 0; k < R; k++) {                                                         \
                const uint8_t *p = base + k * row_bytes + 18 * b;                                 \
                _mm_prefetch((const char *)ahead + k * row_bytes + 18 * b, _MM_HINT_T0);          \
                __m512i A = _mm512_loadu_si512(p);                                                \
                __m512i q = _mm512_permutex2var_epi16(A, qidx, _mm512_loadu_si512(p + 8));        \
                __m512 d = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(didx, A))); \
                __m512 s0 = _mm512_mul_ps(_mm512_permutexvar_ps(q, values), _mm512_load_ps(xc));  \
                __m512 s1 = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), values), \
                                          _mm512_load_ps(xc + 16));                               \
                for (int j = 2; j < 8; j += 2) {                                                  \
                    s0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(q, 4 * j), values), \
                                         _mm512_load_ps(xc + 16 * j), s0);                        \
                    s1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(q, 4 * j + 4), values), \
                                         _mm512_load_ps(xc + 16 * j + 16), s1);                   \
                }                                                                                 \
                acc[k] = _mm512_fmadd_ps(_mm512_add_ps(s0, s1), d, acc[k]);                       \
            }                                                                                     \
        }
        size_t i = 0;
        for (; i < split; i++, b += 4) Q4_0_CHUNK
        ahead = base + (size_t)R * row_bytes - len + PF_Q4_0; // the same row of the next group
        for (; i < chunks; i++, b += 4) Q4_0_CHUNK
#undef Q4_0_CHUNK
    }
    for (; b < blocks; b++) {
        __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
        for (int k = 0; k < R; k++) BLOCK_FMA(q4_0, base + k * row_bytes + 18 * b, x0, x1, acc[k]);
    }
    for (int k = 0; k < R; k++) out[k] = _mm512_reduce_add_ps(acc[k]);
}

#define Q4_0_GROUPS(R)                                                                            \
    for (; r + (R) <= r1; r += (R))                                                               \
        for (size_t t = 0; t < n; t++) {                                                          \
            float out[R];                                                                         \
            dot_q4_0(w + r * row_bytes, (R), row_bytes, xs ? xs + t * chunked : NULL, x + t * cols, cols, out); \
            for (int k = 0; k < (R); k++) y[t * ldy + r + k] = out[k];                            \
        }
static void matmul_q4_0(const uint8_t *w, size_t row_bytes, size_t cols, const float *x, size_t n,
                        float *y, size_t ldy, size_t r0, size_t r1) {
    const float *xs = q4_0_rearrange(x, cols, n);
    const size_t chunked = cols / 128 * 128;
    size_t r = r0;
    Q4_0_GROUPS(G_Q4_0)
    Q4_0_GROUPS(1)
}

GROK_DEFINE_MATMUL(matmul_f32, dot_f32, G_F32)
DEFINE_STREAM_MATMUL(matmul_f16, dot_f16, G_F16)
DEFINE_STREAM_MATMUL(matmul_bf16, dot_bf16, G_BF16)
GROK_DEFINE_MATMUL(matmul_q8_0, dot_q8_0, G_Q8_0)

/// As the AVX2 read_sum (four concurrent streams), with 64-byte loads.
static uint64_t read_sum(const void *p, size_t bytes) {
    const __m512i *q = p;
    size_t quarter = bytes / 4 / 64; // in vectors; bytes is a multiple of 256
    __m512i s[4];
    for (int k = 0; k < 4; k++) s[k] = _mm512_setzero_si512();
    for (size_t i = 0; i < quarter; i++)
        for (int k = 0; k < 4; k++) s[k] = _mm512_add_epi64(s[k], _mm512_load_si512(q + k * quarter + i));
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(s[0], s[1]), _mm512_add_epi64(s[2], s[3])));
}

#pragma clang attribute pop

void grok_avx512_use_kernels(grok_isa_table *table) {
    table->read_sum = read_sum;
    table->matmul_f32 = matmul_f32;
    table->matmul_f16 = matmul_f16;
    table->matmul_bf16 = matmul_bf16;
    table->matmul_q8_0 = matmul_q8_0;
    table->matmul_q4_0 = matmul_q4_0;
}
#endif
