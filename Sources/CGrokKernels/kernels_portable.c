// Portable C kernels: the fallback on CPUs without AVX2, and on arm64.
#include "isa.h"

static inline float weight_f32(const uint8_t *row, size_t c) {
    float v;
    __builtin_memcpy(&v, row + 4 * c, 4);
    return v;
}
static inline float weight_f16(const uint8_t *row, size_t c) { return grok_half_to_float(grok_load_u16(row + 2 * c)); }
static inline float weight_bf16(const uint8_t *row, size_t c) { return grok_bf16_to_float(grok_load_u16(row + 2 * c)); }
static inline float weight_q8_0(const uint8_t *row, size_t c) {
    const uint8_t *block = row + (c / 32) * 34;
    return grok_half_to_float(grok_load_u16(block)) * (float)(int8_t)block[2 + c % 32];
}
static inline float weight_q4_0(const uint8_t *row, size_t c) {
    const uint8_t *block = row + (c / 32) * 18;
    size_t j = c % 32;
    int q = j < 16 ? (block[2 + j] & 0x0F) : (block[2 + j - 16] >> 4);
    return grok_half_to_float(grok_load_u16(block)) * (float)(q - 8);
}

/// Defines dot_<name>(rows, R, x, cols, out): out[k] = Σ_c WEIGHT(rows[k], c) · x[c] for k < R ≤ 4.
#define DEFINE_DOT(name, WEIGHT)                                                                  \
    static inline void dot_##name(const uint8_t *const *rows, int R, const float *x, size_t cols, \
                                  float *out) {                                                   \
        float acc[4] = {0};                                                                       \
        for (size_t c = 0; c < cols; c++)                                                         \
            for (int k = 0; k < R; k++) acc[k] += WEIGHT(rows[k], c) * x[c];                      \
        for (int k = 0; k < R; k++) out[k] = acc[k];                                              \
    }

DEFINE_DOT(f32, weight_f32)
DEFINE_DOT(f16, weight_f16)
DEFINE_DOT(bf16, weight_bf16)
DEFINE_DOT(q8_0, weight_q8_0)
DEFINE_DOT(q4_0, weight_q4_0)

GROK_DEFINE_MATMUL(matmul_f32, dot_f32, 4)
GROK_DEFINE_MATMUL(matmul_f16, dot_f16, 4)
GROK_DEFINE_MATMUL(matmul_bf16, dot_bf16, 4)
GROK_DEFINE_MATMUL(matmul_q8_0, dot_q8_0, 4)
GROK_DEFINE_MATMUL(matmul_q4_0, dot_q4_0, 4)

static void dequantize_f16(const uint8_t *row, size_t cols, float *out) {
    for (size_t c = 0; c < cols; c++) out[c] = weight_f16(row, c);
}
static void dequantize_bf16(const uint8_t *row, size_t cols, float *out) {
    for (size_t c = 0; c < cols; c++) out[c] = weight_bf16(row, c);
}
static void dequantize_q8_0(const uint8_t *row, size_t cols, float *out) {
    for (size_t c = 0; c < cols; c++) out[c] = weight_q8_0(row, c);
}
static void dequantize_q4_0(const uint8_t *row, size_t cols, float *out) {
    for (size_t c = 0; c < cols; c++) out[c] = weight_q4_0(row, c);
}

static void f32_to_f16(const float *src, uint16_t *dst, size_t count) {
    for (size_t i = 0; i < count; i++) dst[i] = grok_float_to_half(src[i]);
}
static void f16_to_f32(const uint16_t *src, float *dst, size_t count) {
    for (size_t i = 0; i < count; i++) dst[i] = grok_half_to_float(src[i]);
}
static void f32_to_bf16(const float *src, uint16_t *dst, size_t count) {
    for (size_t i = 0; i < count; i++) dst[i] = grok_float_to_bf16(src[i]);
}
static void bf16_to_f32(const uint16_t *src, float *dst, size_t count) {
    for (size_t i = 0; i < count; i++) dst[i] = grok_bf16_to_float(src[i]);
}

static uint64_t read_sum(const void *p, size_t bytes) {
    const uint64_t *q = p;
    uint64_t s[8] = {0};
    for (size_t i = 0; i < bytes / 8; i += 8)
        for (int k = 0; k < 8; k++) s[k] += q[i + k];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

const grok_isa_table grok_portable_table = {
    matmul_f32, matmul_f16, matmul_bf16, matmul_q8_0, matmul_q4_0,
    dequantize_f16, dequantize_bf16, dequantize_q8_0, dequantize_q4_0,
    f32_to_f16, f16_to_f32, f32_to_bf16, bf16_to_f32,
    read_sum,
};
