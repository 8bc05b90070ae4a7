// y = alpha · x · wᵀ + beta · y for a few f32 rows x [m, k] and a weight w [n, k] (PyTorch's
// [out, in]) held in bf16, or in fp8 e4m3 with block scales: the decode product. Tiles of up to
// four weight rows (four sequential streams) by a group of x rows; each weight element is
// widened (bf16) or dequantized (fp8, to the bf16 value a bf16 model holds) in a register and
// used for every x row of the group (on AVX2, four x rows for each weight element where the batch
// has four, so fp8 dequantizes each element once per four rows).
// One tile code serves both formats (weights.h), so an fp8 weight gives the bits its
// dequantized bf16 copy would. The AVX-512 kernels are in rows_nt_avx512.c.
#include "ckernels.h"
#include "weights.h"
#include "rows_nt.h"

// ---- scalar

static ALWAYS_INLINE void nt_scalar(const int kind, size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                                    const wsrc *w, float beta, float *y, size_t ldy) {
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < m; i++) {
            float s = 0;
            for (size_t p = 0; p < k; p++) s += x[i * ldx + p] * w_one(kind, w, j, p);
            store_scaled(y + i * ldy + j, s, alpha, beta);
        }
    }
}

// ---- AVX2: tiles of 2 x rows × up to 4 weight rows or 4 x rows × up to 2 (8 accumulators of 16 ymm registers)

/// acc[i][r] += x row i's eight columns from p × weight row r's (wv[r]).
AVX2 static ALWAYS_INLINE void fma_tile(const int MB, const int NB, __m256 acc[4][4], const __m256 *wv, const float *x, size_t ldx, size_t p) {
    for (int i = 0; i < MB; i++) {
        __m256 xv = _mm256_loadu_ps(x + i * ldx + p);
        for (int r = 0; r < NB; r++) acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
    }
}

/// An fp8 weight takes `fp8_fast8` 32 columns at a time wherever `fp8_ready32` clears them,
/// the general dequantization elsewhere; each row's products are added in column order either
/// way, so the bits are the bf16 kernel's.
AVX2 static ALWAYS_INLINE void nt_tile_avx2(const int kind, const int MB, const int NB, size_t k, float alpha, const float *x,
                                            size_t ldx, const wsrc *w, size_t j, float beta, float *y, size_t ldy) {
    __m256 acc[4][4];
    for (int i = 0; i < MB; i++) for (int r = 0; r < NB; r++) acc[i][r] = _mm256_setzero_ps();
    fp8row sr[4];
    colpos cp = fp8_begin(kind, w, j, NB, sr);
    size_t p = 0;
    while (p + 8 <= k) {
        __m256 wv[4];
        if (kind == W_FP8) {
            col_advance(w, &cp, p);
            if (fp8_ready32(w, j, NB, sr, p, cp)) {
                for (int q = 0; q < 4; q++, p += 8) {
                    for (int r = 0; r < NB; r++) wv[r] = w_fast8(w, j + r, p, &sr[r]);
                    fma_tile(MB, NB, acc, wv, x, ldx, p);
                }
                continue;
            }
        }
        for (int r = 0; r < NB; r++) wv[r] = w_load8(kind, w, j + r, p, sr[r].srow, cp);
        fma_tile(MB, NB, acc, wv, x, ldx, p);
        p += 8;
    }
    for (int i = 0; i < MB; i++) {
        for (int r = 0; r < NB; r++) {
            float s = sum8(acc[i][r]);
            for (size_t q = p; q < k; q++) s += x[i * ldx + q] * w_one(kind, w, j + r, q);
            store_scaled(y + i * ldy + r, s, alpha, beta);
        }
    }
}

#define NT_AVX2(MB, NB) nt_tile_avx2(kind, MB, NB, k, alpha, xi, ldx, w, j, beta, yij, ldy)

/// One x row: eight weight rows at a time (eight streams, one accumulator each, the four-row
/// tile's arithmetic per row, so the bits are the same). Rows of at most 2 KB (o_proj's
/// `[hidden, heads/tp · v]` at tp ≥ 2) also prefetch the next eight rows' lines as this group
/// runs: the hardware prefetcher loses each stream at a row's end, and the four-row tile read
/// such rows at 0.37–0.50 of the read ceiling against 0.52–0.69 now (kernel-bench decode, bf16
/// `[2048, 512]` and `[2048, 1024]`, AVX2 EPYC). Longer rows are not prefetched: eight rows
/// ahead is then more than L1 holds, and 8 KB rows streamed slower with it.
AVX2 static ALWAYS_INLINE void nt_one_row_avx2(const int kind, size_t n, size_t k, float alpha, const float *x,
                                               const wsrc *w, float beta, float *y) {
    const int prefetch = (kind == W_BF16 ? 2 * k : k) <= 2048;
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        size_t next_rows = prefetch ? (n - j - 8 < 8 ? n - j - 8 : 8) : 0;
        __m256 acc[8];
        for (int r = 0; r < 8; r++) acc[r] = _mm256_setzero_ps();
        fp8row sr[8];
        colpos cp = fp8_begin(kind, w, j, 8, sr);
        size_t p = 0;
        while (p + 8 <= k) {
            if ((p & 31) == 0 || kind == W_FP8)
                for (size_t r = 0; r < next_rows; r++) _mm_prefetch(w_addr(kind, w, j + 8 + r, p), _MM_HINT_T0);
            if (kind == W_FP8) {
                col_advance(w, &cp, p);
                if (fp8_ready32(w, j, 8, sr, p, cp)) {
                    for (int q = 0; q < 4; q++, p += 8) {
                        __m256 xv = _mm256_loadu_ps(x + p);
                        for (int r = 0; r < 8; r++) acc[r] = _mm256_fmadd_ps(xv, w_fast8(w, j + r, p, &sr[r]), acc[r]);
                    }
                    continue;
                }
            }
            __m256 xv = _mm256_loadu_ps(x + p);
            for (int r = 0; r < 8; r++) acc[r] = _mm256_fmadd_ps(xv, w_load8(kind, w, j + r, p, sr[r].srow, cp), acc[r]);
            p += 8;
        }
        for (int r = 0; r < 8; r++) {
            float s = sum8(acc[r]);
            for (size_t q = p; q < k; q++) s += x[q] * w_one(kind, w, j + r, q);
            store_scaled(y + j + r, s, alpha, beta);
        }
    }
    for (; j < n; j += 4) {
        size_t nb = n - j < 4 ? n - j : 4;
        const float *xi = x;
        float *yij = y + j;
        size_t ldx = 0, ldy = 0;
        switch (nb) { case 4: NT_AVX2(1, 4); break; case 3: NT_AVX2(1, 3); break;
                      case 2: NT_AVX2(1, 2); break; default: NT_AVX2(1, 1); }
    }
}

AVX2 static ALWAYS_INLINE void nt_avx2(const int kind, size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                                       const wsrc *w, float beta, float *y, size_t ldy) {
    if (m == 1) { nt_one_row_avx2(kind, n, k, alpha, x, w, beta, y); return; }
    for (size_t j = 0; j < n; j += 4) {
        size_t nb = n - j < 4 ? n - j : 4;
        size_t i = 0;
        // Groups of four x rows take two weight rows at a time, so that each weight element is
        // loaded and widened or dequantized once for four rows rather than once per pair.
        for (; i + 4 <= m; i += 4)
            for (size_t h = 0; h < nb; h += 2) {
                if (nb - h >= 2) nt_tile_avx2(kind, 4, 2, k, alpha, x + i * ldx, ldx, w, j + h, beta, y + i * ldy + j + h, ldy);
                else nt_tile_avx2(kind, 4, 1, k, alpha, x + i * ldx, ldx, w, j + h, beta, y + i * ldy + j + h, ldy);
            }
        for (; i < m; i += 2) {
            const float *xi = x + i * ldx;
            float *yij = y + i * ldy + j;
            if (m - i >= 2) {
                switch (nb) { case 4: NT_AVX2(2, 4); break; case 3: NT_AVX2(2, 3); break;
                              case 2: NT_AVX2(2, 2); break; default: NT_AVX2(2, 1); }
            } else {
                switch (nb) { case 4: NT_AVX2(1, 4); break; case 3: NT_AVX2(1, 3); break;
                              case 2: NT_AVX2(1, 2); break; default: NT_AVX2(1, 1); }
            }
        }
    }
}

// ---- the two formats, each kernel specialised once per instruction set

static void nt_scalar_bf16(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx, const wsrc *w, float beta, float *y, size_t ldy) {
    nt_scalar(W_BF16, m, n, k, alpha, x, ldx, w, beta, y, ldy);
}
static void nt_scalar_fp8(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx, const wsrc *w, float beta, float *y, size_t ldy) {
    nt_scalar(W_FP8, m, n, k, alpha, x, ldx, w, beta, y, ldy);
}
AVX2 static void nt_avx2_bf16(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx, const wsrc *w, float beta, float *y, size_t ldy) {
    nt_avx2(W_BF16, m, n, k, alpha, x, ldx, w, beta, y, ldy);
}
AVX2 static void nt_avx2_fp8(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx, const wsrc *w, float beta, float *y, size_t ldy) {
    nt_avx2(W_FP8, m, n, k, alpha, x, ldx, w, beta, y, ldy);
}

void mlatp_bf16_rows_nt(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                        const uint16_t *w, size_t ldw, float beta, float *y, size_t ldy, int isa) {
    wsrc s = { .w = w, .ldw = ldw };
    switch (mlatp_isa_resolve(isa)) {
    case MLATP_ISA_AVX512: mlatp_nt_avx512_bf16(m, n, k, alpha, x, ldx, &s, beta, y, ldy); break;
    case MLATP_ISA_AVX2: nt_avx2_bf16(m, n, k, alpha, x, ldx, &s, beta, y, ldy); break;
    default: nt_scalar_bf16(m, n, k, alpha, x, ldx, &s, beta, y, ldy);
    }
}

void mlatp_fp8_rows_nt(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                       const uint8_t *w, size_t ldw, const float *scales, size_t lds, const int32_t *row_scale,
                       size_t row0, size_t col0, size_t block, float beta, float *y, size_t ldy, int isa) {
    wsrc s = { .w = w, .ldw = ldw, .scales = scales, .lds = lds, .row_scale = row_scale, .row0 = row0, .col0 = col0, .block = block, .cols = k };
    switch (mlatp_isa_resolve(isa)) {
    case MLATP_ISA_AVX512: mlatp_nt_avx512_fp8(m, n, k, alpha, x, ldx, &s, beta, y, ldy); break;
    case MLATP_ISA_AVX2: nt_avx2_fp8(m, n, k, alpha, x, ldx, &s, beta, y, ldy); break;
    default: nt_scalar_fp8(m, n, k, alpha, x, ldx, &s, beta, y, ldy);
    }
}
