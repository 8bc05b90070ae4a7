// The products of `--invariant`: every element of the result is computed in one order fixed by
// its definition, whatever the shape of the call, the blocking, the row count or the tile the
// element falls in. Two forms, each defined element by element:
//
//   NN  y[i,j]: acc = +0 (or y[i,j] when accumulating); for p = 0, 1, …, k−1:
//               acc = fma(x[i,p], w[p,j], acc)                       (one chain, ascending p)
//   NT  y[i,j]: eight lane chains a_l = +0; for p = 0, 8, … below k8 = k − k mod 8:
//               a_l = fma(x[i,p+l], w[j,p+l], a_l); then
//               s = ((a_0 + a_4) + (a_2 + a_6)) + ((a_1 + a_5) + (a_3 + a_7)); then
//               for p = k8 … k−1: s = fma(x[i,p], w[j,p], s)
//
// An NN chain continued by a second call (accumulate) over the next rows of w is bit for bit the
// chain of one call over both. The AVX2 code and the portable code evaluate the same fused
// multiply-adds in the same order, so they give the same bits; AVX-512 CPUs run the AVX2 code.
// Weights are f32 or bf16 (widened exactly); x and y are f32.
#include "ckernels.h"
#include "widen.h"
#include <math.h>
#include <stdlib.h>

static ALWAYS_INLINE float w_at(const void *w, int bf16, size_t index) {
    return bf16 ? widen_one(((const uint16_t *)w)[index]) : ((const float *)w)[index];
}

// ---- portable: the definitions themselves

static void nn_portable(size_t m, size_t n, size_t k, const float *x, size_t ldx, const void *w, int bf16, size_t ldw,
                        float *y, size_t ldy, int accumulate) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            float acc = accumulate ? y[i * ldy + j] : 0.0f;
            for (size_t p = 0; p < k; p++) acc = fmaf(x[i * ldx + p], w_at(w, bf16, p * ldw + j), acc);
            y[i * ldy + j] = acc;
        }
}

static float nt_one_portable(size_t k, const float *x, const void *w, int bf16, size_t row) {
    float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t k8 = k - k % 8, p = 0;
    for (; p < k8; p += 8)
        for (int l = 0; l < 8; l++) a[l] = fmaf(x[p + l], w_at(w, bf16, row + p + l), a[l]);
    float s04 = a[0] + a[4], s26 = a[2] + a[6], s15 = a[1] + a[5], s37 = a[3] + a[7];
    float s = (s04 + s26) + (s15 + s37);
    for (; p < k; p++) s = fmaf(x[p], w_at(w, bf16, row + p), s);
    return s;
}

static void nt_portable(size_t m, size_t n, size_t k, const float *x, size_t ldx, const void *w, int bf16, size_t ldw,
                        float *y, size_t ldy) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) y[i * ldy + j] = nt_one_portable(k, x + i * ldx, w, bf16, j * ldw);
}

// ---- AVX2

AVX2 static ALWAYS_INLINE __m256 w_load8(const void *w, int bf16, size_t index) {
    return bf16 ? widen8((const uint16_t *)w + index) : _mm256_loadu_ps((const float *)w + index);
}

/// NN for a few rows: `KB` weight rows at a time swept across every column (KB sequential
/// streams), each piece of 32 columns applied to up to three x rows whose sums stay in registers
/// over those KB rows and in y between sweeps (the chain continues through memory exactly).
enum { KB = 8, NN_SMALL_M = 6, MC = 6, MCB = 72, NR = 16, KC = 256, NC = 512 };

AVX2 static ALWAYS_INLINE void nn_rows_piece(const int MB, const int V, const float *x, size_t ldx, const void *w, int bf16,
                                             size_t ldw, size_t p0, size_t kb, size_t j, float *y, size_t ldy, int init) {
    __m256 acc[3][4];
    for (int i = 0; i < MB; i++)
        for (int v = 0; v < V; v++) acc[i][v] = init ? _mm256_setzero_ps() : _mm256_loadu_ps(y + i * ldy + j + 8 * v);
    for (size_t p = p0; p < p0 + kb; p++) {
        __m256 wv[4];
        for (int v = 0; v < V; v++) wv[v] = w_load8(w, bf16, p * ldw + j + 8 * v);
        for (int i = 0; i < MB; i++) {
            __m256 xb = _mm256_broadcast_ss(x + i * ldx + p);
            for (int v = 0; v < V; v++) acc[i][v] = _mm256_fmadd_ps(xb, wv[v], acc[i][v]);
        }
    }
    for (int i = 0; i < MB; i++) for (int v = 0; v < V; v++) _mm256_storeu_ps(y + i * ldy + j + 8 * v, acc[i][v]);
}

#define NN_PIECE(MB, V) nn_rows_piece(MB, V, xi, ldx, w, bf16, ldw, p0, kb, j, yi, ldy, init)

AVX2 static void nn_rows_avx2(size_t m, size_t n, size_t k, const float *x, size_t ldx, const void *w, int bf16, size_t ldw,
                              float *y, size_t ldy, int accumulate) {
    for (size_t p0 = 0; p0 < k; p0 += KB) {
        size_t kb = k - p0 < KB ? k - p0 : KB;
        int init = p0 == 0 && !accumulate;
        for (size_t i0 = 0; i0 < m; i0 += 3) {
            size_t mb = m - i0 < 3 ? m - i0 : 3;
            const float *xi = x + i0 * ldx;
            float *yi = y + i0 * ldy;
            size_t j = 0;
            for (; j + 32 <= n; j += 32) {
                if (mb == 3) NN_PIECE(3, 4); else if (mb == 2) NN_PIECE(2, 4); else NN_PIECE(1, 4);
            }
            for (; j + 8 <= n; j += 8) {
                if (mb == 3) NN_PIECE(3, 1); else if (mb == 2) NN_PIECE(2, 1); else NN_PIECE(1, 1);
            }
            for (; j < n; j++)                                   // the last columns: the same chain, one element at a time
                for (size_t i = 0; i < mb; i++) {
                    float acc = init ? 0.0f : yi[i * ldy + j];
                    for (size_t p = p0; p < p0 + kb; p++) acc = fmaf(xi[i * ldx + p], w_at(w, bf16, p * ldw + j), acc);
                    yi[i * ldy + j] = acc;
                }
        }
    }
}

/// The 6 × 16 register tile over `kc` packed weight rows (`bp`, 16 floats a row) and packed x
/// (`ap`, MC floats per k: the tile's rows side by side): MB rows, `cols` ≤ 16 valid columns of y.
AVX2 static ALWAYS_INLINE void nn_tile(const int MB, size_t kc, const float *ap, const float *bp, float *y, size_t ldy,
                                       size_t cols, int init) {
    __m256 c[MC][2];
    float edge[MC][NR];
    if (cols < NR && !init)
        for (int i = 0; i < MB; i++) for (size_t q = 0; q < NR; q++) edge[i][q] = q < cols ? y[i * ldy + q] : 0.0f;
    for (int i = 0; i < MB; i++) {
        if (init) { c[i][0] = _mm256_setzero_ps(); c[i][1] = _mm256_setzero_ps(); }
        else if (cols < NR) { c[i][0] = _mm256_loadu_ps(edge[i]); c[i][1] = _mm256_loadu_ps(edge[i] + 8); }
        else { c[i][0] = _mm256_loadu_ps(y + i * ldy); c[i][1] = _mm256_loadu_ps(y + i * ldy + 8); }
    }
#pragma clang loop unroll_count(4)
    for (size_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(bp + p * NR), b1 = _mm256_load_ps(bp + p * NR + 8);
        for (int i = 0; i < MB; i++) {
            __m256 a = _mm256_broadcast_ss(ap + p * MC + i);
            c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
        }
    }
    if (cols < NR) {
        for (int i = 0; i < MB; i++) { _mm256_storeu_ps(edge[i], c[i][0]); _mm256_storeu_ps(edge[i] + 8, c[i][1]); }
        for (int i = 0; i < MB; i++) for (size_t q = 0; q < cols; q++) y[i * ldy + q] = edge[i][q];
    } else {
        for (int i = 0; i < MB; i++) { _mm256_storeu_ps(y + i * ldy, c[i][0]); _mm256_storeu_ps(y + i * ldy + 8, c[i][1]); }
    }
}

/// NN for many rows: the weight packed `KC` rows × `NC` columns at a time into 16-column
/// panels (bf16 widened there) and x `MCB` rows × `KC` at a time into 6-row slivers; each panel
/// (in L1) runs against every sliver of the block (in L2).
AVX2 static void nn_packed_avx2(size_t m, size_t n, size_t k, const float *x, size_t ldx, const void *w, int bf16, size_t ldw,
                                float *y, size_t ldy, int accumulate, float *bp, float *ap) {
    for (size_t j0 = 0; j0 < n; j0 += NC) {
        size_t nc = n - j0 < NC ? n - j0 : NC, panels = (nc + NR - 1) / NR;
        for (size_t p0 = 0; p0 < k; p0 += KC) {
            size_t kc = k - p0 < KC ? k - p0 : KC;
            int init = p0 == 0 && !accumulate;
            for (size_t p = 0; p < kc; p++) {                       // row by row: each weight row read as one stream
                size_t row = (p0 + p) * ldw + j0;
                for (size_t q = 0; q < panels; q++) {
                    size_t cols = nc - q * NR < NR ? nc - q * NR : NR;
                    float *dst = bp + q * KC * NR + p * NR;
                    if (cols == NR) {
                        _mm256_store_ps(dst, w_load8(w, bf16, row + q * NR));
                        _mm256_store_ps(dst + 8, w_load8(w, bf16, row + q * NR + 8));
                    } else {
                        for (size_t c = 0; c < NR; c++) dst[c] = c < cols ? w_at(w, bf16, row + q * NR + c) : 0.0f;
                    }
                }
            }
            for (size_t ic = 0; ic < m; ic += MCB) {                 // a block of x rows, packed as 6-row slivers
                size_t mcb = m - ic < MCB ? m - ic : MCB, slivers = (mcb + MC - 1) / MC;
                for (size_t t = 0; t < slivers; t++) {
                    size_t i0 = ic + t * MC, mb = m - i0 < MC ? m - i0 : MC;
                    const float *xi = x + i0 * ldx + p0;
                    float *dst = ap + t * KC * MC;
                    for (size_t p = 0; p < kc; p++)
                        for (size_t i = 0; i < MC; i++) dst[p * MC + i] = i < mb ? xi[i * ldx + p] : 0.0f;
                }
                for (size_t q = 0; q < panels; q++) {                // each panel (in L1) against every sliver of the block
                    size_t c0 = j0 + q * NR, cols = nc - q * NR < NR ? nc - q * NR : NR;
                    const float *panel = bp + q * KC * NR;
                    for (size_t t = 0; t < slivers; t++) {
                        size_t i0 = ic + t * MC, mb = m - i0 < MC ? m - i0 : MC;
                        const float *a = ap + t * KC * MC;
                        float *yi = y + i0 * ldy + c0;
                        switch (mb) {
                        case 6: nn_tile(6, kc, a, panel, yi, ldy, cols, init); break;
                        case 5: nn_tile(5, kc, a, panel, yi, ldy, cols, init); break;
                        case 4: nn_tile(4, kc, a, panel, yi, ldy, cols, init); break;
                        case 3: nn_tile(3, kc, a, panel, yi, ldy, cols, init); break;
                        case 2: nn_tile(2, kc, a, panel, yi, ldy, cols, init); break;
                        default: nn_tile(1, kc, a, panel, yi, ldy, cols, init);
                        }
                    }
                }
            }
        }
    }
}

/// NT: tiles of up to 4 x rows × 3 weight rows (12 accumulators), eight lanes per element, the whole k at once.
AVX2 static ALWAYS_INLINE void nt_tile(const int MB, const int NB, size_t k, const float *x, size_t ldx, const void *w, int bf16,
                                       size_t ldw, size_t j, float *y, size_t ldy) {
    __m256 acc[4][3];
    for (int i = 0; i < MB; i++) for (int r = 0; r < NB; r++) acc[i][r] = _mm256_setzero_ps();
    size_t k8 = k - k % 8, p = 0;
    for (; p < k8; p += 8) {
        __m256 wv[3];
        for (int r = 0; r < NB; r++) wv[r] = w_load8(w, bf16, (j + r) * ldw + p);
        for (int i = 0; i < MB; i++) {
            __m256 xv = _mm256_loadu_ps(x + i * ldx + p);
            for (int r = 0; r < NB; r++) acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
        }
    }
    for (int i = 0; i < MB; i++)
        for (int r = 0; r < NB; r++) {
            float s = sum8(acc[i][r]);                          // ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))
            for (size_t q = p; q < k; q++) s = fmaf(x[i * ldx + q], w_at(w, bf16, (j + r) * ldw + q), s);
            y[i * ldy + j + r] = s;
        }
}

#define NT_TILE(MB, NB) nt_tile(MB, NB, k, xi, ldx, w, bf16, ldw, j, yi, ldy)
#define NT_ROWS(MB) switch (nb) { case 3: NT_TILE(MB, 3); break; case 2: NT_TILE(MB, 2); break; default: NT_TILE(MB, 1); }

AVX2 static void nt_avx2(size_t m, size_t n, size_t k, const float *x, size_t ldx, const void *w, int bf16, size_t ldw,
                         float *y, size_t ldy) {
    for (size_t i = 0; i < m; i += 4) {
        const float *xi = x + i * ldx;
        float *yi = y + i * ldy;
        size_t mb = m - i < 4 ? m - i : 4;
        for (size_t j = 0; j < n; j += 3) {
            size_t nb = n - j < 3 ? n - j : 3;
            switch (mb) { case 4: NT_ROWS(4); break; case 3: NT_ROWS(3); break; case 2: NT_ROWS(2); break; default: NT_ROWS(1); }
        }
    }
}

// ---- entry points

static int fixed_uses_avx2(int isa) { return mlatp_isa_resolve(isa) >= MLATP_ISA_AVX2; }

void mlatp_fixed_nn(size_t m, size_t n, size_t k, const float *x, size_t ldx, const void *w, int bf16, size_t ldw,
                    float *y, size_t ldy, int accumulate, int isa) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (!accumulate) for (size_t i = 0; i < m; i++) for (size_t j = 0; j < n; j++) y[i * ldy + j] = 0;
        return;
    }
    if (!fixed_uses_avx2(isa)) { nn_portable(m, n, k, x, ldx, w, bf16, ldw, y, ldy, accumulate); return; }
    if (m <= NN_SMALL_M) { nn_rows_avx2(m, n, k, x, ldx, w, bf16, ldw, y, ldy, accumulate); return; }
    // The packing buffers, made once per thread and kept (600 KB): a fresh allocation per call
    // would fault its pages in every time (the attention makes thousands of small calls).
    static __thread float *bp = 0;
    if (!bp) bp = aligned_alloc(32, sizeof(float) * (KC * NC + KC * MCB));
    if (!bp) { nn_rows_avx2(m, n, k, x, ldx, w, bf16, ldw, y, ldy, accumulate); return; }
    nn_packed_avx2(m, n, k, x, ldx, w, bf16, ldw, y, ldy, accumulate, bp, bp + KC * NC);
}

void mlatp_fixed_nt(size_t m, size_t n, size_t k, const float *x, size_t ldx, const void *w, int bf16, size_t ldw,
                    float *y, size_t ldy, int isa) {
    if (m == 0 || n == 0) return;
    if (fixed_uses_avx2(isa)) nt_avx2(m, n, k, x, ldx, w, bf16, ldw, y, ldy);
    else nt_portable(m, n, k, x, ldx, w, bf16, ldw, y, ldy);
}
