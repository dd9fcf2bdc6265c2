// CGrokKernels: SIMD inner loops of GrokTensor (imported only by Sources/GrokTensor/Kernels.swift).
//
// Weight rows are in ggml layouts, numbered by ggml type (DType.swift): F32 = 0, F16 = 1, Q4_0 = 2,
// Q8_0 = 8, BF16 = 30. Row r of a matrix starts at `w + r * row_bytes`; rows need no alignment.
// Every kernel exists as AVX-512, AVX2+FMA+F16C and portable C; the best one the CPU supports is
// chosen at first use (see grok_kernels_set_isa).
#ifndef GROK_KERNELS_H
#define GROK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum grok_dtype { GROK_F32 = 0, GROK_F16 = 1, GROK_Q4_0 = 2, GROK_Q8_0 = 8, GROK_BF16 = 30 };

/// Instruction-set variants of the kernels.
enum grok_isa { GROK_ISA_PORTABLE = 0, GROK_ISA_AVX2 = 1, GROK_ISA_AVX512 = 2 };

/// Whether this CPU (and build) can run `isa`.
int grok_kernels_isa_supported(int isa);
/// The variant in use: the best supported one unless set.
int grok_kernels_isa(void);
/// Uses `isa` from now on (for tests and benchmarks). Returns 0 if unsupported (nothing changes).
int grok_kernels_set_isa(int isa);

/// y[t * ldy + r] = Σ_c W[r, c] · x[t * cols + c] for t in [0, n), r in [r0, r1).
/// x: [n, cols] f32 row-major. Accumulates in f32; weights are dequantized on the fly.
void grok_matmul_rows(int dtype, const void *w, size_t row_bytes, size_t cols,
                      const float *x, size_t n, float *y, size_t ldy, size_t r0, size_t r1);

/// out[(r - r0) * cols + c] = W[r, c] in f32 for r in [r0, r1), c in [0, cols).
void grok_dequantize_rows(int dtype, const void *w, size_t row_bytes, size_t cols,
                          size_t r0, size_t r1, float *out);

/// Bulk conversions of `count` values. f32 → f16 and f32 → bf16 round to nearest even;
/// f32 → bf16 keeps NaNs NaN (quietened) as ggml does.
void grok_f32_to_f16(const float *src, uint16_t *dst, size_t count);
void grok_f16_to_f32(const uint16_t *src, float *dst, size_t count);
void grok_f32_to_bf16(const float *src, uint16_t *dst, size_t count);
void grok_bf16_to_f32(const uint16_t *src, float *dst, size_t count);

/// Reads `bytes` bytes at `p` (64-byte aligned, bytes a multiple of 256) with wide loads and returns
/// a checksum of them (so that the reads cannot be optimised away). For bandwidth measurement.
uint64_t grok_read_sum(const void *p, size_t bytes);

/// A pool of persistent worker threads. The calling thread of grok_pool_run takes part as worker
/// 0, so a pool of `threads` starts threads - 1 workers. Workers spin briefly after each job, then
/// sleep on a condition variable.
typedef struct grok_pool grok_pool;
typedef void (*grok_task_fn)(void *context, size_t index);

/// A pool of `threads` (≥ 1) threads in all; NULL if threads could not be started.
grok_pool *grok_pool_create(int threads);
/// Stops and joins the workers. No job may be running.
void grok_pool_destroy(grok_pool *pool);
/// Calls fn(context, i) once for every i in [0, count), spread over the pool, and returns when all
/// calls have returned. Workers claim `chunk` consecutive indices at a time. If the pool is already
/// running a job (a nested call from inside fn, or a call from another thread), runs inline.
void grok_pool_run(grok_pool *pool, grok_task_fn fn, void *context, size_t count, size_t chunk);

/// XXH64 of `length` bytes (xxhash64.c): the checksum of shard blocks.
uint64_t grok_xxh64(const void *data, size_t length, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif
