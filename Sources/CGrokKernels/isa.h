// Private to CGrokKernels: the per-instruction-set tables that dispatch.c chooses from.
#ifndef GROK_ISA_H
#define GROK_ISA_H

#include "grok_kernels.h"

typedef void (*grok_matmul_rows_fn)(const uint8_t *w, size_t row_bytes, size_t cols,
                                    const float *x, size_t n, float *y, size_t ldy, size_t r0, size_t r1);
typedef void (*grok_dequantize_row_fn)(const uint8_t *row, size_t cols, float *out);

/// Kernels of one instruction set, indexed by dtype through grok_isa_table_lookup.
typedef struct {
    grok_matmul_rows_fn matmul_f32, matmul_f16, matmul_bf16, matmul_q8_0, matmul_q4_0;
    grok_dequantize_row_fn dequantize_f16, dequantize_bf16, dequantize_q8_0, dequantize_q4_0;
    void (*f32_to_f16)(const float *, uint16_t *, size_t);
    void (*f16_to_f32)(const uint16_t *, float *, size_t);
    void (*f32_to_bf16)(const float *, uint16_t *, size_t);
    void (*bf16_to_f32)(const uint16_t *, float *, size_t);
    uint64_t (*read_sum)(const void *, size_t);
} grok_isa_table;

extern const grok_isa_table grok_portable_table;
#if defined(__x86_64__)
extern const grok_isa_table grok_avx2_table;
/// Replaces the matmul and read kernels of `table` (the AVX2 one) by the AVX-512 ones.
void grok_avx512_use_kernels(grok_isa_table *table);
#endif

// Scalar helpers shared by the variants.

/// f16 bits → f32, exact (including subnormals, infinities and NaN payloads).
static inline float grok_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000 | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else { // subnormal: normalise
        int shift = 0;
        while (!(mant & 0x400)) { mant <<= 1; shift++; }
        bits = sign | ((uint32_t)(113 - shift) << 23) | ((mant & 0x3FF) << 13);
    }
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
}

/// f32 → f16 bits, round to nearest even; overflow gives infinity, NaN stays NaN.
static inline uint16_t grok_float_to_half(float f) {
    uint32_t x;
    __builtin_memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7FFFFFFF;
    if (ax > 0x7F800000) return sign | 0x7E00 | (uint16_t)((ax >> 13) & 0x1FF);
    if (ax >= 0x477FF000) return sign | 0x7C00; // ≥ 65520 rounds to infinity
    if (ax < 0x38800000) { // result subnormal or zero: add 0.5 so that the FPU rounds at 2^-24
        float a, r;
        __builtin_memcpy(&a, &ax, 4);
        r = a + 0.5f;
        uint32_t rb;
        __builtin_memcpy(&rb, &r, 4);
        return sign | (uint16_t)(rb - 0x3F000000);
    }
    uint32_t rounded = ax + 0xFFF + ((ax >> 13) & 1) - 0x38000000;
    return sign | (uint16_t)(rounded >> 13);
}

static inline float grok_bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
}

/// f32 → bf16 bits as ggml's GGML_FP32_TO_BF16: round to nearest even, NaN quietened.
static inline uint16_t grok_float_to_bf16(float f) {
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7FFF + ((u >> 16) & 1))) >> 16);
}

static inline uint16_t grok_load_u16(const uint8_t *p) {
    uint16_t v;
    __builtin_memcpy(&v, p, 2);
    return v;
}

/// Defines `static void name(...)` of type grok_matmul_rows_fn from a dot kernel
/// `DOT(const uint8_t *const *rows, int R, const float *x, size_t cols, float *out)` that writes
/// out[k] = row k · x for k < R. Rows go GROUP at a time (then 4, then 1): each x load serves the
/// whole group, and the group's concurrent streams keep enough memory reads in flight; each token
/// reuses the group's rows while they are still in cache.
#define GROK_DEFINE_MATMUL(name, DOT, GROUP)                                                      \
    static void name(const uint8_t *w, size_t row_bytes, size_t cols, const float *x, size_t n,  \
                     float *y, size_t ldy, size_t r0, size_t r1) {                               \
        size_t r = r0;                                                                            \
        GROK_ROW_GROUPS(DOT, GROUP)                                                               \
        GROK_ROW_GROUPS(DOT, 4)                                                                   \
        GROK_ROW_GROUPS(DOT, 1)                                                                   \
    }
#define GROK_ROW_GROUPS(DOT, R)                                                                   \
    for (; r + (R) <= r1; r += (R)) {                                                             \
        const uint8_t *rows[R];                                                                   \
        for (int k = 0; k < (R); k++) rows[k] = w + (r + k) * row_bytes;                         \
        for (size_t t = 0; t < n; t++) {                                                          \
            float out[R];                                                                         \
            DOT(rows, (R), x + t * cols, cols, out);                                              \
            for (int k = 0; k < (R); k++) y[t * ldy + r + k] = out[k];                            \
        }                                                                                         \
    }

#endif
