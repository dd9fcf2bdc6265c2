// AVX-512 (F, BW, VL) matmul and read kernels (x86_64 only; chosen at run time by dispatch.c).
// The other kernels of this variant are the AVX2 ones: they are not on the hot path.
//
// Decode streams weights from memory. One core reaches its share of the bandwidth only with many
// reads in flight: the denser the format (the more work per byte), the fewer the out-of-order
// window holds, so rows go up to 16 at a time (concurrent streams) and the streams are
// prefetched ahead, one cache line per row per step. Measured on Zen 5 (1 core, 1 GiB matrices),
// this takes Q8_0 from 13 to 34 GB/s and BF16 from 25 to 30 GB/s.
#if defined(__x86_64__)
#include <immintrin.h>
#include "isa.h"

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)

#define INLINE static inline __attribute__((always_inline))
/// Per dtype: rows per group (at most GROUP) and prefetch distance in bytes (0: none), as measured
/// fastest on Zen 5 for rows of 6144–32768 columns.
enum { GROUP = 16 };
enum { G_F32 = 4, PF_F32 = 0 };
enum { G_F16 = 8, PF_F16 = 1024 };
enum { G_BF16 = 8, PF_BF16 = 1024 };
enum { G_Q8_0 = 16, PF_Q8_0 = 512 };
enum { G_Q4_0 = 8, PF_Q4_0 = 256 };

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

/// Dot kernels of the plain float types: a cache line (64 / ESIZE columns) of every row of the
/// group per step, one accumulator per row, then 16-column masked steps for the tail. ESIZE is the
/// element size in bytes; PREFETCH the prefetch distance (0: none).
#define DEFINE_FLOAT_DOT(name, ESIZE, PREFETCH)                                                   \
    INLINE void dot_##name(const uint8_t *const *rows, int R, const float *x, size_t cols,        \
                           float *out) {                                                          \
        enum { STEP = 64 / ESIZE, VECTORS = STEP / 16 };                                          \
        __m512 acc[GROUP];                                                                        \
        for (int k = 0; k < R; k++) acc[k] = _mm512_setzero_ps();                                 \
        size_t c = 0;                                                                             \
        for (; c + STEP <= cols; c += STEP) {                                                     \
            __m512 xv[VECTORS];                                                                   \
            for (int v = 0; v < VECTORS; v++) xv[v] = _mm512_loadu_ps(x + c + 16 * v);            \
            for (int k = 0; k < R; k++) {                                                         \
                prefetch(rows[k] + ESIZE * c, PREFETCH);                                          \
                for (int v = 0; v < VECTORS; v++)                                                 \
                    acc[k] = _mm512_fmadd_ps(load16_##name(rows[k] + ESIZE * (c + 16 * v)), xv[v], acc[k]); \
            }                                                                                     \
        }                                                                                         \
        for (; c < cols; c += 16) {                                                               \
            size_t left = cols - c;                                                               \
            __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);         \
            __m512 x0 = _mm512_maskz_loadu_ps(m, x + c);                                          \
            for (int k = 0; k < R; k++)                                                           \
                acc[k] = _mm512_fmadd_ps(mask16_##name(m, rows[k] + ESIZE * c), x0, acc[k]);      \
        }                                                                                         \
        for (int k = 0; k < R; k++) out[k] = _mm512_reduce_add_ps(acc[k]);                        \
    }

DEFINE_FLOAT_DOT(f32, 4, PF_F32)
DEFINE_FLOAT_DOT(f16, 2, PF_F16)
DEFINE_FLOAT_DOT(bf16, 2, PF_BF16)

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

/// Dot kernels of the block types: per block, the quants · x in f32, then scaled by d. A step is
/// STEP blocks (about a cache line) of every row of the group; each x block is loaded once per
/// step for the whole group, and the prefetches are spread over the step's first block.
#define DEFINE_BLOCK_DOT(name, BLOCK_BYTES, STEP, PREFETCH)                                       \
    INLINE void dot_##name(const uint8_t *const *rows, int R, const float *x, size_t cols,        \
                           float *out) {                                                          \
        __m512 acc[GROUP];                                                                        \
        for (int k = 0; k < R; k++) acc[k] = _mm512_setzero_ps();                                 \
        size_t blocks = cols / 32, b = 0;                                                         \
        for (; b + STEP <= blocks; b += STEP) {                                                   \
            for (int j = 0; j < STEP; j++) {                                                      \
                __m512 x0 = _mm512_loadu_ps(x + 32 * (b + j)), x1 = _mm512_loadu_ps(x + 32 * (b + j) + 16); \
                for (int k = 0; k < R; k++) {                                                     \
                    if (j == 0) prefetch(rows[k] + BLOCK_BYTES * b, PREFETCH);                    \
                    BLOCK_FMA(name, rows[k] + BLOCK_BYTES * (b + j), x0, x1, acc[k]);             \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        for (; b < blocks; b++) {                                                                 \
            __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);       \
            for (int k = 0; k < R; k++) BLOCK_FMA(name, rows[k] + BLOCK_BYTES * b, x0, x1, acc[k]); \
        }                                                                                         \
        for (int k = 0; k < R; k++) out[k] = _mm512_reduce_add_ps(acc[k]);                        \
    }

DEFINE_BLOCK_DOT(q8_0, 34, 2, PF_Q8_0)
DEFINE_BLOCK_DOT(q4_0, 18, 4, PF_Q4_0)

GROK_DEFINE_MATMUL(matmul_f32, dot_f32, G_F32)
GROK_DEFINE_MATMUL(matmul_f16, dot_f16, G_F16)
GROK_DEFINE_MATMUL(matmul_bf16, dot_bf16, G_BF16)
GROK_DEFINE_MATMUL(matmul_q8_0, dot_q8_0, G_Q8_0)
GROK_DEFINE_MATMUL(matmul_q4_0, dot_q4_0, G_Q4_0)

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
