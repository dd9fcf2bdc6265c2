// AVX2 + FMA + F16C kernels (x86_64 only; chosen at run time by dispatch.c).
#if defined(__x86_64__)
#include <immintrin.h>
#include "isa.h"

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)

#define INLINE static inline __attribute__((always_inline))
/// Per dtype: rows per group (see kernels_avx512.c), at most GROUP, and prefetch distance in bytes
/// (0: none), as measured fastest on Zen 5 (running this variant) for rows of 6144 columns.
enum { GROUP = 8 };
enum { G_F32 = 4, PF_F32 = 1024 };
enum { G_F16 = 8, PF_F16 = 1024 };
enum { G_BF16 = 8, PF_BF16 = 1024 };
enum { G_Q8_0 = 8, PF_Q8_0 = 1024 };
enum { G_Q4_0 = 4, PF_Q4_0 = 512 };

INLINE void prefetch(const uint8_t *p, int distance) {
    if (distance) _mm_prefetch((const char *)p + distance, _MM_HINT_T0);
}

INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Loads of 8 weights as f32.
INLINE __m256 load8_f32(const uint8_t *p) { return _mm256_loadu_ps((const float *)p); }
INLINE __m256 load8_f16(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
INLINE __m256 load8_bf16(const uint8_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
INLINE float scalar_f32(const uint8_t *p) { float v; __builtin_memcpy(&v, p, 4); return v; }
INLINE float scalar_f16(const uint8_t *p) { return _cvtsh_ss(grok_load_u16(p)); }
INLINE float scalar_bf16(const uint8_t *p) { return grok_bf16_to_float(grok_load_u16(p)); }

/// Dot kernels of the plain float types: a cache line (64 / ESIZE columns) of every row of the
/// group per step, one accumulator per row, then a scalar tail. ESIZE is the element size in
/// bytes; PREFETCH the prefetch distance (0: none).
#define DEFINE_FLOAT_DOT(name, ESIZE, PREFETCH)                                                   \
    INLINE void dot_##name(const uint8_t *const *rows, int R, const float *x, size_t cols,        \
                           float *out) {                                                          \
        enum { STEP = 64 / ESIZE, VECTORS = STEP / 8 };                                           \
        __m256 acc[GROUP];                                                                        \
        for (int k = 0; k < R; k++) acc[k] = _mm256_setzero_ps();                                 \
        size_t c = 0;                                                                             \
        for (; c + STEP <= cols; c += STEP) {                                                     \
            for (int v = 0; v < VECTORS; v++) {                                                   \
                __m256 xv = _mm256_loadu_ps(x + c + 8 * v);                                       \
                for (int k = 0; k < R; k++) {                                                     \
                    if (v == 0) prefetch(rows[k] + ESIZE * c, PREFETCH);                          \
                    acc[k] = _mm256_fmadd_ps(load8_##name(rows[k] + ESIZE * (c + 8 * v)), xv, acc[k]); \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        for (int k = 0; k < R; k++) {                                                             \
            float s = hsum(acc[k]);                                                               \
            for (size_t i = c; i < cols; i++) s += scalar_##name(rows[k] + ESIZE * i) * x[i];     \
            out[k] = s;                                                                           \
        }                                                                                         \
    }

DEFINE_FLOAT_DOT(f32, 4, PF_F32)
DEFINE_FLOAT_DOT(f16, 2, PF_F16)
DEFINE_FLOAT_DOT(bf16, 2, PF_BF16)

/// The f16 scale d at the start of a block, broadcast.
INLINE __m256 block_scale(const uint8_t *block) {
    return _mm256_cvtph_ps(_mm_set1_epi16((short)grok_load_u16(block)));
}

/// The 32 int8 quants of a Q8_0 block as four vectors of f32.
INLINE void q8_0_block(const uint8_t *qs, __m256 q[4]) {
    for (int i = 0; i < 4; i++)
        q[i] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8 * i))));
}

/// The 32 quants of a Q4_0 block (nibbles minus 8) as four vectors of f32, in element order:
/// low nibbles of bytes 0..15 are elements 0..15, high nibbles elements 16..31.
INLINE void q4_0_block(const uint8_t *qs, __m256 q[4]) {
    const __m128i mask = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    __m128i b = _mm_loadu_si128((const __m128i *)qs);
    __m128i lo = _mm_sub_epi8(_mm_and_si128(b, mask), eight);
    __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), mask), eight);
    q[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    q[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    q[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    q[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

/// acc += d · (quants · x) for one block of 32 columns (x at xb).
#define BLOCK_FMA(name, block, xb, acc)                                                           \
    do {                                                                                          \
        __m256 q[4];                                                                              \
        name##_block((block) + 2, q);                                                             \
        __m256 s = _mm256_mul_ps(q[0], _mm256_loadu_ps(xb));                                      \
        for (int i = 1; i < 4; i++) s = _mm256_fmadd_ps(q[i], _mm256_loadu_ps((xb) + 8 * i), s);  \
        acc = _mm256_fmadd_ps(block_scale(block), s, acc);                                        \
    } while (0)

/// Dot kernels of the block types: per block, the quants · x in f32, then scaled by d. A step is
/// STEP blocks (about a cache line) of every row of the group, prefetched during its first block.
#define DEFINE_BLOCK_DOT(name, BLOCK_BYTES, STEP, PREFETCH)                                       \
    INLINE void dot_##name(const uint8_t *const *rows, int R, const float *x, size_t cols,        \
                           float *out) {                                                          \
        __m256 acc[GROUP];                                                                        \
        for (int k = 0; k < R; k++) acc[k] = _mm256_setzero_ps();                                 \
        size_t blocks = cols / 32, b = 0;                                                         \
        for (; b + STEP <= blocks; b += STEP)                                                     \
            for (int j = 0; j < STEP; j++)                                                        \
                for (int k = 0; k < R; k++) {                                                     \
                    if (j == 0) prefetch(rows[k] + BLOCK_BYTES * b, PREFETCH);                    \
                    BLOCK_FMA(name, rows[k] + BLOCK_BYTES * (b + j), x + 32 * (b + j), acc[k]);   \
                }                                                                                 \
        for (; b < blocks; b++)                                                                   \
            for (int k = 0; k < R; k++) BLOCK_FMA(name, rows[k] + BLOCK_BYTES * b, x + 32 * b, acc[k]); \
        for (int k = 0; k < R; k++) out[k] = hsum(acc[k]);                                        \
    }

DEFINE_BLOCK_DOT(q8_0, 34, 2, PF_Q8_0)
DEFINE_BLOCK_DOT(q4_0, 18, 4, PF_Q4_0)

GROK_DEFINE_MATMUL(matmul_f32, dot_f32, G_F32)
GROK_DEFINE_MATMUL(matmul_f16, dot_f16, G_F16)
GROK_DEFINE_MATMUL(matmul_bf16, dot_bf16, G_BF16)
GROK_DEFINE_MATMUL(matmul_q8_0, dot_q8_0, G_Q8_0)
GROK_DEFINE_MATMUL(matmul_q4_0, dot_q4_0, G_Q4_0)

static void dequantize_f16(const uint8_t *row, size_t cols, float *out) {
    size_t c = 0;
    for (; c + 8 <= cols; c += 8) _mm256_storeu_ps(out + c, load8_f16(row + 2 * c));
    for (; c < cols; c++) out[c] = scalar_f16(row + 2 * c);
}
static void dequantize_bf16(const uint8_t *row, size_t cols, float *out) {
    size_t c = 0;
    for (; c + 8 <= cols; c += 8) _mm256_storeu_ps(out + c, load8_bf16(row + 2 * c));
    for (; c < cols; c++) out[c] = scalar_bf16(row + 2 * c);
}
#define DEFINE_BLOCK_DEQUANTIZE(name, BLOCK_BYTES)                                                \
    static void dequantize_##name(const uint8_t *row, size_t cols, float *out) {                  \
        for (size_t b = 0; b < cols / 32; b++) {                                                  \
            const uint8_t *block = row + BLOCK_BYTES * b;                                         \
            __m256 d = block_scale(block), q[4];                     \
            name##_block(block + 2, q);                                                           \
            for (int i = 0; i < 4; i++) _mm256_storeu_ps(out + 32 * b + 8 * i, _mm256_mul_ps(d, q[i])); \
        }                                                                                         \
    }
DEFINE_BLOCK_DEQUANTIZE(q8_0, 34)
DEFINE_BLOCK_DEQUANTIZE(q4_0, 18)

static void f32_to_f16(const float *src, uint16_t *dst, size_t count) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < count; i++) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}
static void f16_to_f32(const uint16_t *src, float *dst, size_t count) {
    dequantize_f16((const uint8_t *)src, count, dst);
}
static void f32_to_bf16(const float *src, uint16_t *dst, size_t count) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7FFF), quiet = _mm256_set1_epi32(64);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
        __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, lsb)), 16);
        __m256i quieted = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);
        __m256i v = _mm256_blendv_epi8(rounded, quieted, nan);
        // Pack the eight 16-bit results (in the low halves of the lanes) in order.
        __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storeu_si128((__m128i *)(dst + i), packed);
    }
    for (; i < count; i++) dst[i] = grok_float_to_bf16(src[i]);
}
static void bf16_to_f32(const uint16_t *src, float *dst, size_t count) {
    dequantize_bf16((const uint8_t *)src, count, dst);
}

/// Sums 64-bit words over four concurrent streams (the quarters of the buffer), as the matmul
/// kernels read several rows at once: one stream alone leaves bandwidth unused.
static uint64_t read_sum(const void *p, size_t bytes) {
    const __m256i *q = p;
    size_t quarter = bytes / 4 / 32; // in vectors; bytes is a multiple of 256
    __m256i s[8];
    for (int i = 0; i < 8; i++) s[i] = _mm256_setzero_si256();
    for (size_t i = 0; i < quarter; i += 2)
        for (int k = 0; k < 4; k++) {
            s[2 * k] = _mm256_add_epi64(s[2 * k], _mm256_load_si256(q + k * quarter + i));
            s[2 * k + 1] = _mm256_add_epi64(s[2 * k + 1], _mm256_load_si256(q + k * quarter + i + 1));
        }
    for (int i = 1; i < 8; i++) s[0] = _mm256_add_epi64(s[0], s[i]);
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, s[0]);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

const grok_isa_table grok_avx2_table = {
    matmul_f32, matmul_f16, matmul_bf16, matmul_q8_0, matmul_q4_0,
    dequantize_f16, dequantize_bf16, dequantize_q8_0, dequantize_q4_0,
    f32_to_f16, f16_to_f32, f32_to_bf16, bf16_to_f32,
    read_sum,
};

#pragma clang attribute pop
#endif
