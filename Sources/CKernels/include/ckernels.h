// CKernels: bf16 conversions and the small-m bf16 weight-streaming products, in C so that each
// function can carry its own instruction set (`__attribute__((target(...)))`) and be chosen at
// run time: Swift on x86-64 targets baseline x86-64 (SSE2, no FMA). No stable API: only
// TensorCore uses it. bf16 values travel as their uint16_t bit patterns.
#ifndef MLATP_CKERNELS_H
#define MLATP_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Instruction-set levels of the kernels, best last. `MLATP_ISA_BEST` asks for the best this CPU runs.
enum {
    MLATP_ISA_BEST = -1,
    MLATP_ISA_SCALAR = 0,   // portable C
    MLATP_ISA_AVX2 = 1,     // AVX2 + FMA, 8 lanes
    MLATP_ISA_AVX512 = 2,   // AVX-512 F + BW + VL, 16 lanes, masked tails
};

/// The best level this CPU supports (detected once).
int mlatp_isa_supported(void);

/// `isa` if this CPU runs it, else the best level below it (`MLATP_ISA_BEST` gives the best).
int mlatp_isa_resolve(int isa);

/// dst[i] = bf16(src[i]) for n values: round to nearest even; NaN stays NaN (quiet, sign and
/// top payload bits kept); values past the largest bf16 round to ±Inf.
void mlatp_bf16_round(const float *src, uint16_t *dst, size_t n, int isa);

/// out[i] = the bf16 sum of parts[0][i], …, parts[count-1][i] in that order, each addition computed
/// in f32 from its two bf16 operands and rounded to nearest even (a bf16 reduction), kept as f32.
/// One pass: each part read once, out written once.
void mlatp_bf16_chain_sum(const uint16_t *const *parts, size_t count, float *out, size_t n, int isa);

/// dst[i] = float(src[i]) for n values (exact).
void mlatp_bf16_widen(const uint16_t *src, float *dst, size_t n, int isa);

/// dst[i] = float(bf16(src[i])): f32 values rounded to bf16 precision, kept as f32 (src may equal dst).
void mlatp_bf16_round_f32(const float *src, float *dst, size_t n, int isa);

/// Widens a rows × cols block with leading dimensions: dst[r·ldd + c] = float(src[r·lds + c]).
void mlatp_bf16_widen_2d(size_t rows, size_t cols, const uint16_t *src, size_t lds, float *dst, size_t ldd, int isa);

/// y[i, j] = alpha · Σ_p x[i, p] · w[j, p] + beta · y[i, j] for i < m, j < n: f32 rows `x`
/// (leading dimension ldx) times a bf16 weight kept `[n, k]` (PyTorch's `[out, in]`, leading
/// dimension ldw), accumulated in f32. Each weight row is read once per group of up to four x
/// rows. beta = 0 overwrites y whatever it held.
void mlatp_bf16_rows_nt(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                        const uint16_t *w, size_t ldw, float beta, float *y, size_t ldy, int isa);

/// The same product for a bf16 weight kept `[k, n]` (`[in, out]`): y[i, j] = alpha · Σ_p x[i, p] · w[p, j]
/// + beta · y[i, j]. The weight is read row after row (sequentially), eight rows at a time.
void mlatp_bf16_rows_nn(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                        const uint16_t *w, size_t ldw, float beta, float *y, size_t ldy, int isa);

/// `heads` row-kernel products in one call: y_h = x_h · op(w_h) with x_h = x + h·xs, w_h = w + h·ws,
/// y_h = y + h·ys (alpha 1, beta 0), each exactly as `mlatp_bf16_rows_nt` (transB) or `_nn` computes it.
void mlatp_bf16_rows_heads(int transB, size_t heads, size_t m, size_t n, size_t k, const float *x, size_t ldx, size_t xs,
                           const uint16_t *w, size_t ldw, size_t ws, float *y, size_t ldy, size_t ys, int isa);

/// The same product for a weight held in fp8 e4m3 `[n, k]` with one f32 scale per block × block
/// tile: row j's scales are row `row_scale[j]` of `scales` (leading dimension lds), or with
/// row_scale NULL row `(row0 + j) / block`; column p's is entry `(col0 + p) / block` of that row.
/// row0 and col0 are where row 0 and column 0 sit within their scale blocks (global index mod
/// block, plus the first row's offset for a tile taken further down). Each element is used as bf16(e4m3 × scale), the value a bf16 model holds after
/// dequantizing in f32, with the same tiles and accumulation order as `mlatp_bf16_rows_nt`: an
/// fp8 weight gives the bits of its dequantized bf16 copy.
void mlatp_fp8_rows_nt(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                       const uint8_t *w, size_t ldw, const float *scales, size_t lds, const int32_t *row_scale,
                       size_t row0, size_t col0, size_t block, float beta, float *y, size_t ldy, int isa);

/// dst[r, p] = bf16(e4m3(w[r, p]) × scale(r, p)) for a rows × cols tile, scales as in
/// `mlatp_fp8_rows_nt` (rows indexed from the tile's first row).
void mlatp_fp8_dequant_bf16(size_t rows, size_t cols, const uint8_t *w, size_t ldw, const float *scales, size_t lds,
                            const int32_t *row_scale, size_t row0, size_t col0, size_t block, uint16_t *dst, size_t ldd, int isa);

/// The same values kept as f32: dst[r, p] = float(bf16(e4m3(w[r, p]) × scale(r, p))).
void mlatp_fp8_dequant_f32(size_t rows, size_t cols, const uint8_t *w, size_t ldw, const float *scales, size_t lds,
                           const int32_t *row_scale, size_t row0, size_t col0, size_t block, float *dst, size_t ldd, int isa);

/// The largest |src[i]| (NaN if any value is NaN).
float mlatp_absmax(const float *src, size_t n);

/// e4m3 of v, rounded to nearest even, saturated at ±448, NaN kept NaN (0x7f with v's sign).
uint8_t mlatp_fp8_encode_one(float v);

/// dst[i] = e4m3(src[i] / scale) (DeepSeek-V3's weight quantization, scale = amax / 448).
void mlatp_fp8_encode(const float *src, uint8_t *dst, size_t n, float scale);

/// Sets the OpenMP runtime's thread count (for oneDNN, which runs on libgomp) if that runtime is
/// loaded; returns 0 when it was set, -1 when no OpenMP runtime is in the process.
int mlatp_openmp_set_threads(int n);

/// The OpenMP runtime's thread count for the next parallel region, or -1 when none is loaded.
int mlatp_openmp_max_threads(void);

/// Returns freed heap pages to the kernel (glibc's `malloc_trim(0)`): 1 if any were, 0 if none
/// (or the C library has no such call).
int mlatp_heap_trim(void);

/// The fixed-order products of `--invariant` (fixed_order.c): each element's order is its
/// definition, not the call's shape. NN, w `[k, n]` (f32, or bf16 when `bf16`): y[i,j] is one
/// chain acc = fma(x[i,p], w[p,j], acc) over p = 0 … k−1 from +0, or from y[i,j] when
/// `accumulate` (so a second call over the next rows of w continues the chain exactly).
void mlatp_fixed_nn(size_t m, size_t n, size_t k, const float *x, size_t ldx, const void *w, int bf16, size_t ldw,
                    float *y, size_t ldy, int accumulate, int isa);

/// NT, w `[n, k]`: y[i,j] = eight lane chains over p ≡ l (mod 8) below k − k mod 8, summed
/// ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)), then the last k mod 8 terms chained on.
void mlatp_fixed_nt(size_t m, size_t n, size_t k, const float *x, size_t ldx, const void *w, int bf16, size_t ldw,
                    float *y, size_t ldy, int isa);

#endif
