// Public kernel entry points: choose the instruction-set variant once, then forward to it.
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include "isa.h"

static grok_isa_table tables[3];
static _Atomic(const grok_isa_table *) current;
static _Atomic int current_isa;
static pthread_once_t once = PTHREAD_ONCE_INIT;

int grok_kernels_isa_supported(int isa) {
    switch (isa) {
    case GROK_ISA_PORTABLE: return 1;
#if defined(__x86_64__)
    case GROK_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case GROK_ISA_AVX512:
        return grok_kernels_isa_supported(GROK_ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#endif
    default: return 0;
    }
}

static void initialise(void) {
    tables[GROK_ISA_PORTABLE] = grok_portable_table;
#if defined(__x86_64__)
    tables[GROK_ISA_AVX2] = grok_avx2_table;
    tables[GROK_ISA_AVX512] = grok_avx2_table;
    grok_avx512_use_kernels(&tables[GROK_ISA_AVX512]);
#endif
    int best = GROK_ISA_AVX512;
    while (!grok_kernels_isa_supported(best)) best--;
    atomic_store(&current_isa, best);
    atomic_store(&current, &tables[best]);
}

static const grok_isa_table *table(void) {
    pthread_once(&once, initialise);
    return atomic_load_explicit(&current, memory_order_acquire);
}

int grok_kernels_isa(void) {
    pthread_once(&once, initialise);
    return atomic_load(&current_isa);
}

int grok_kernels_set_isa(int isa) {
    pthread_once(&once, initialise);
    if (!grok_kernels_isa_supported(isa)) return 0;
    atomic_store(&current_isa, isa);
    atomic_store(&current, &tables[isa]);
    return 1;
}

void grok_matmul_rows(int dtype, const void *w, size_t row_bytes, size_t cols,
                      const float *x, size_t n, float *y, size_t ldy, size_t r0, size_t r1) {
    const grok_isa_table *t = table();
    grok_matmul_rows_fn fn;
    switch (dtype) {
    case GROK_F32: fn = t->matmul_f32; break;
    case GROK_F16: fn = t->matmul_f16; break;
    case GROK_BF16: fn = t->matmul_bf16; break;
    case GROK_Q8_0: fn = t->matmul_q8_0; break;
    case GROK_Q4_0: fn = t->matmul_q4_0; break;
    default: return;
    }
    fn(w, row_bytes, cols, x, n, y, ldy, r0, r1);
}

void grok_dequantize_rows(int dtype, const void *w, size_t row_bytes, size_t cols,
                          size_t r0, size_t r1, float *out) {
    const grok_isa_table *t = table();
    grok_dequantize_row_fn fn = NULL;
    switch (dtype) {
    case GROK_F32: break;
    case GROK_F16: fn = t->dequantize_f16; break;
    case GROK_BF16: fn = t->dequantize_bf16; break;
    case GROK_Q8_0: fn = t->dequantize_q8_0; break;
    case GROK_Q4_0: fn = t->dequantize_q4_0; break;
    default: return;
    }
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * row_bytes;
        float *dst = out + (r - r0) * cols;
        if (fn) fn(row, cols, dst);
        else memcpy(dst, row, cols * sizeof(float));
    }
}

void grok_f32_to_f16(const float *src, uint16_t *dst, size_t count) { table()->f32_to_f16(src, dst, count); }
void grok_f16_to_f32(const uint16_t *src, float *dst, size_t count) { table()->f16_to_f32(src, dst, count); }
void grok_f32_to_bf16(const float *src, uint16_t *dst, size_t count) { table()->f32_to_bf16(src, dst, count); }
void grok_bf16_to_f32(const uint16_t *src, float *dst, size_t count) { table()->bf16_to_f32(src, dst, count); }
uint64_t grok_read_sum(const void *p, size_t bytes) { return table()->read_sum(p, bytes); }
