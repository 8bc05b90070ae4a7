// The decode product's AVX-512 kernels (rows_nt.c has the scalar and AVX2 ones and the entry
// points): y = alpha · x · wᵀ + beta · y for a few f32 rows x and a bf16 or fp8 weight [n, k], the
// same tiles and accumulation order on both formats, so an fp8 weight gives its bf16 copy's bits.
#include "ckernels.h"
#include "weights.h"
#include "rows_nt.h"

// ---- AVX-512: up to 4 x rows × 4 weight rows (16 accumulators of 32 zmm registers), masked k tail

/// acc[i][r] += x row i's sixteen columns from p × weight row r's (wv[r]).
AVX512 static ALWAYS_INLINE void fma_tile16(const int MB, const int NB, __m512 acc[4][4], const __m512 *wv, const float *x, size_t ldx, size_t p) {
    for (int i = 0; i < MB; i++) {
        __m512 xv = _mm512_loadu_ps(x + i * ldx + p);
        for (int r = 0; r < NB; r++) acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
    }
}

/// Sixteen fp8 columns from p (the first popcount(mask) of them) of `nb` weight rows on the general
/// dequantization, against `mb` x rows: acc[i·nb + r] += x row i · weight row r. Kept out of line,
/// so that the kernels' loops hold their accumulators in registers on the table route (inlined,
/// this step's registers pushed them to the stack, and every FMA there went through memory).
AVX512 static __attribute__((noinline)) void fp8_general16(int mb, int nb, const wsrc *w, size_t j, size_t p, colpos cp,
                                                           const fp8row *sr, const float *x, size_t ldx, __mmask16 mask,
                                                           __m512 *acc) {
    __m512 wv[8];
    for (int r = 0; r < nb; r++) wv[r] = w_load16_masked(W_FP8, w, j + r, p, sr[r].srow, cp, mask);
    for (int i = 0; i < mb; i++) {
        __m512 xv = _mm512_maskz_loadu_ps(mask, x + i * ldx + p);
        for (int r = 0; r < nb; r++) acc[i * nb + r] = _mm512_fmadd_ps(xv, wv[r], acc[i * nb + r]);
    }
}

/// `fp8_general16` for the one-row loop's eight weight rows, on a copy of its accumulators.
AVX512 static ALWAYS_INLINE void fp8_general_step(const wsrc *w, size_t j, size_t p, colpos cp, const fp8row *sr,
                                                  const float *x, __mmask16 mask, __m512 acc[8]) {
    __m512 spill[8];
    for (int r = 0; r < 8; r++) spill[r] = acc[r];
    fp8_general16(1, 8, w, j, p, cp, sr, x, 0, mask, spill);
    for (int r = 0; r < 8; r++) acc[r] = spill[r];
}

/// `fp8_general16` for an MB × NB tile, on a copy of its accumulators.
AVX512 static ALWAYS_INLINE void fp8_tile_step(const int MB, const int NB, const wsrc *w, size_t j, size_t p, colpos cp,
                                               const fp8row *sr, const float *x, size_t ldx, __mmask16 mask, __m512 acc[4][4]) {
    __m512 spill[16];
    for (int i = 0; i < MB; i++) for (int r = 0; r < NB; r++) spill[i * NB + r] = acc[i][r];
    fp8_general16(MB, NB, w, j, p, cp, sr, x, ldx, mask, spill);
    for (int i = 0; i < MB; i++) for (int r = 0; r < NB; r++) acc[i][r] = spill[i * NB + r];
}

/// Rows `next ..< next + next_rows` are the following tile's: their lines are prefetched while
/// this tile runs, one 64-byte line per row per 32 elements, so that a row's start, where the
/// hardware prefetcher has to find the stream again, does not wait on memory.
AVX512 static ALWAYS_INLINE void nt_tile_avx512(const int kind, const int MB, const int NB, size_t k, float alpha, const float *x,
                                                size_t ldx, const wsrc *w, size_t j, size_t next, size_t next_rows,
                                                float beta, float *y, size_t ldy) {
    __m512 acc[4][4];
    for (int i = 0; i < MB; i++) for (int r = 0; r < NB; r++) acc[i][r] = _mm512_setzero_ps();
    fp8row sr[4];
    colpos cp = fp8_begin(kind, w, j, NB, sr);
    size_t p = 0;
    while (p + 16 <= k) {
        if ((p & 31) == 0)
            for (size_t r = 0; r < next_rows; r++) _mm_prefetch(w_addr(kind, w, next + r, p), _MM_HINT_T0);
        __m512 wv[4];
        if (kind == W_FP8) {
            col_advance(w, &cp, p);
            if (fp8_ready64(w, j, NB, sr, p, cp)) {
                for (int q = 0; q < 4; q++, p += 16) {
                    for (int r = 0; r < NB; r++) wv[r] = w_fast16(w, j + r, p, &sr[r]);
                    fma_tile16(MB, NB, acc, wv, x, ldx, p);
                }
                continue;
            }
            fp8_tile_step(MB, NB, w, j, p, cp, sr, x, ldx, 0xffff, acc);
            p += 16;
            continue;
        }
        for (int r = 0; r < NB; r++) wv[r] = w_load16(kind, w, j + r, p, sr[r].srow, cp);
        fma_tile16(MB, NB, acc, wv, x, ldx, p);
        p += 16;
    }
    if (p < k) {
        __mmask16 mask = (__mmask16)((1u << (k - p)) - 1u);
        if (kind == W_FP8) {
            col_advance(w, &cp, p);
            fp8_tile_step(MB, NB, w, j, p, cp, sr, x, ldx, mask, acc);
        } else {
            __m512 wv[4];
            for (int r = 0; r < NB; r++) wv[r] = w_load16_masked(kind, w, j + r, p, sr[r].srow, cp, mask);
            for (int i = 0; i < MB; i++) {
                __m512 xv = _mm512_maskz_loadu_ps(mask, x + i * ldx + p);
                for (int r = 0; r < NB; r++) acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
            }
        }
    }
    for (int i = 0; i < MB; i++)
        for (int r = 0; r < NB; r++) store_scaled(y + i * ldy + r, _mm512_reduce_add_ps(acc[i][r]), alpha, beta);
}

#define NT_AVX512(MB, NB) nt_tile_avx512(kind, MB, NB, k, alpha, xi, ldx, w, j, j + 4, next_rows, beta, yij, ldy)
/// One x row: eight weight rows at a time (eight streams, one accumulator each), prefetching
/// the next eight rows' lines as this group runs. Measured here (kernel-bench decode, one row,
/// [24576, 7168] bf16 weight): 16.5 GB/s against 14.6 with the four-row tiles, 0.92 of memcpy.
/// An fp8 weight takes 64 plain columns of the eight rows at a time through their tables
/// (`fp8_ready64`, `w_fast16`); the general step runs out of line (`fp8_general_step`).
/// The same weight as fp8 streamed at 4.4 GB/s on the general dequantization alone and 10.0 GB/s
/// this way (kernel-bench decode, AMD EPYC with AVX-512): 2.11 times bf16's time before, 0.92 after.
AVX512 static ALWAYS_INLINE void nt_one_row_avx512(const int kind, size_t n, size_t k, float alpha, const float *x,
                                                   const wsrc *w, float beta, float *y) {
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        size_t next_rows = n - j - 8 < 8 ? n - j - 8 : 8;
        __m512 acc[8];
        for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_ps();
        fp8row sr[8];
        colpos cp = fp8_begin(kind, w, j, 8, sr);
        size_t p = 0;
        while (p + 16 <= k) {
            if ((p & 31) == 0)
                for (size_t r = 0; r < next_rows; r++) _mm_prefetch(w_addr(kind, w, j + 8 + r, p), _MM_HINT_T0);
            if (kind == W_FP8) {
                col_advance(w, &cp, p);
                if (fp8_ready64(w, j, 8, sr, p, cp)) {
                    for (int q = 0; q < 4; q++, p += 16) {
                        __m512 xv = _mm512_loadu_ps(x + p);
                        for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(xv, w_fast16(w, j + r, p, &sr[r]), acc[r]);
                    }
                    continue;
                }
                fp8_general_step(w, j, p, cp, sr, x, 0xffff, acc);
                p += 16;
                continue;
            }
            __m512 xv = _mm512_loadu_ps(x + p);
            for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(xv, w_load16(kind, w, j + r, p, sr[r].srow, cp), acc[r]);
            p += 16;
        }
        if (p < k) {
            __mmask16 mask = (__mmask16)((1u << (k - p)) - 1u);
            if (kind == W_FP8) {
                col_advance(w, &cp, p);
                fp8_general_step(w, j, p, cp, sr, x, mask, acc);
            } else {
                __m512 xv = _mm512_maskz_loadu_ps(mask, x + p);
                for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(xv, w_load16_masked(kind, w, j + r, p, sr[r].srow, cp, mask), acc[r]);
            }
        }
        for (int r = 0; r < 8; r++) store_scaled(y + j + r, _mm512_reduce_add_ps(acc[r]), alpha, beta);
    }
    for (; j < n; j += 4) {
        size_t nb = n - j < 4 ? n - j : 4;
        const float *xi = x;
        float *yij = y + j;
        size_t ldy = 0, ldx = 0, next_rows = 0;
        switch (nb) { case 4: NT_AVX512(1, 4); break; case 3: NT_AVX512(1, 3); break;
                      case 2: NT_AVX512(1, 2); break; default: NT_AVX512(1, 1); }
    }
}

#define NT_AVX512_ROWS(MB) \
    switch (nb) { case 4: NT_AVX512(MB, 4); break; case 3: NT_AVX512(MB, 3); break; \
                  case 2: NT_AVX512(MB, 2); break; default: NT_AVX512(MB, 1); }

AVX512 static ALWAYS_INLINE void nt_avx512(const int kind, size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                                           const wsrc *w, float beta, float *y, size_t ldy) {
    if (m == 1) { nt_one_row_avx512(kind, n, k, alpha, x, w, beta, y); return; }
    for (size_t j = 0; j < n; j += 4) {
        size_t nb = n - j < 4 ? n - j : 4;
        size_t next_rows = n - j <= 4 ? 0 : (n - j - 4 < 4 ? n - j - 4 : 4);   // the next tile's rows
        for (size_t i = 0; i < m; i += 4) {
            const float *xi = x + i * ldx;
            float *yij = y + i * ldy + j;
            switch (m - i < 4 ? m - i : 4) {
            case 4: NT_AVX512_ROWS(4); break;
            case 3: NT_AVX512_ROWS(3); break;
            case 2: NT_AVX512_ROWS(2); break;
            default: NT_AVX512_ROWS(1);
            }
        }
    }
}

AVX512 void mlatp_nt_avx512_bf16(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx, const wsrc *w, float beta, float *y, size_t ldy) {
    nt_avx512(W_BF16, m, n, k, alpha, x, ldx, w, beta, y, ldy);
}
AVX512 void mlatp_nt_avx512_fp8(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx, const wsrc *w, float beta, float *y, size_t ldy) {
    nt_avx512(W_FP8, m, n, k, alpha, x, ldx, w, beta, y, ldy);
}
