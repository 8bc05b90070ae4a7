// y = alpha · x · wᵀ + beta · y for a few f32 rows x [m, k] and a bf16 weight w [n, k]
// (PyTorch's [out, in]): the decode product. Tiles of up to four weight rows (four sequential
// streams) by a group of x rows; each weight element is widened in a register and used for
// every x row of the group, so for m ≤ the group size each weight byte is read once.
#include "ckernels.h"
#include "widen.h"

// ---- scalar

static void nt_scalar(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                      const uint16_t *w, size_t ldw, float beta, float *y, size_t ldy) {
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < m; i++) {
            float s = 0;
            for (size_t p = 0; p < k; p++) s += x[i * ldx + p] * widen_one(w[j * ldw + p]);
            store_scaled(y + i * ldy + j, s, alpha, beta);
        }
    }
}

// ---- AVX2: up to 2 x rows × 4 weight rows (8 accumulators of 16 ymm registers)

AVX2 static ALWAYS_INLINE void nt_tile_avx2(const int MB, const int NB, size_t k, float alpha, const float *x, size_t ldx,
                                            const uint16_t *w, size_t ldw, float beta, float *y, size_t ldy) {
    __m256 acc[2][4];
    for (int i = 0; i < MB; i++) for (int r = 0; r < NB; r++) acc[i][r] = _mm256_setzero_ps();
    size_t p = 0;
    for (; p + 8 <= k; p += 8) {
        __m256 wv[4];
        for (int r = 0; r < NB; r++) wv[r] = widen8(w + r * ldw + p);
        for (int i = 0; i < MB; i++) {
            __m256 xv = _mm256_loadu_ps(x + i * ldx + p);
            for (int r = 0; r < NB; r++) acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
        }
    }
    for (int i = 0; i < MB; i++) {
        for (int r = 0; r < NB; r++) {
            float s = sum8(acc[i][r]);
            for (size_t q = p; q < k; q++) s += x[i * ldx + q] * widen_one(w[r * ldw + q]);
            store_scaled(y + i * ldy + r, s, alpha, beta);
        }
    }
}

#define NT_AVX2(MB, NB) nt_tile_avx2(MB, NB, k, alpha, xi, ldx, wj, ldw, beta, yij, ldy)

AVX2 static void nt_avx2(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                         const uint16_t *w, size_t ldw, float beta, float *y, size_t ldy) {
    for (size_t j = 0; j < n; j += 4) {
        const uint16_t *wj = w + j * ldw;
        size_t nb = n - j < 4 ? n - j : 4;
        for (size_t i = 0; i < m; i += 2) {
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

// ---- AVX-512: up to 4 x rows × 4 weight rows (16 accumulators of 32 zmm registers), masked k tail

/// `next` is the following tile's first weight row: its lines are prefetched while this
/// tile runs, one 64-byte line per row per 32 elements, so that a row's start, where the hardware
/// prefetcher has to find the stream again, does not wait on memory.
AVX512 static ALWAYS_INLINE void nt_tile_avx512(const int MB, const int NB, size_t k, float alpha, const float *x, size_t ldx,
                                                const uint16_t *w, const uint16_t *next, size_t next_rows, size_t ldw,
                                                float beta, float *y, size_t ldy) {
    __m512 acc[4][4];
    for (int i = 0; i < MB; i++) for (int r = 0; r < NB; r++) acc[i][r] = _mm512_setzero_ps();
    size_t p = 0;
    for (; p + 16 <= k; p += 16) {
        if ((p & 31) == 0)
            for (size_t r = 0; r < next_rows; r++) _mm_prefetch((const char *)(next + r * ldw + p), _MM_HINT_T0);
        __m512 wv[4];
        for (int r = 0; r < NB; r++) wv[r] = widen16(w + r * ldw + p);
        for (int i = 0; i < MB; i++) {
            __m512 xv = _mm512_loadu_ps(x + i * ldx + p);
            for (int r = 0; r < NB; r++) acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
        }
    }
    if (p < k) {
        __mmask16 mask = (__mmask16)((1u << (k - p)) - 1u);
        __m512 wv[4];
        for (int r = 0; r < NB; r++) wv[r] = widen16_masked(w + r * ldw + p, mask);
        for (int i = 0; i < MB; i++) {
            __m512 xv = _mm512_maskz_loadu_ps(mask, x + i * ldx + p);
            for (int r = 0; r < NB; r++) acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
        }
    }
    for (int i = 0; i < MB; i++)
        for (int r = 0; r < NB; r++) store_scaled(y + i * ldy + r, _mm512_reduce_add_ps(acc[i][r]), alpha, beta);
}

#define NT_AVX512(MB, NB) nt_tile_avx512(MB, NB, k, alpha, xi, ldx, wj, wj + 4 * ldw, next_rows, ldw, beta, yij, ldy)
/// One x row: eight weight rows at a time (eight streams, one accumulator each), prefetching
/// the next eight rows' lines as this group runs. Measured here (kernel-bench decode, one row,
/// [24576, 7168] weight): 16.5 GB/s against 14.6 with the four-row tiles, 0.92 of memcpy.
AVX512 static void nt_one_row_avx512(size_t n, size_t k, float alpha, const float *x, const uint16_t *w, size_t ldw,
                                     float beta, float *y) {
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const uint16_t *wj = w + j * ldw;
        size_t next_rows = n - j - 8 < 8 ? n - j - 8 : 8;
        __m512 acc[8];
        for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_ps();
        size_t p = 0;
        for (; p + 16 <= k; p += 16) {
            if ((p & 31) == 0)
                for (size_t r = 0; r < next_rows; r++) _mm_prefetch((const char *)(wj + (8 + r) * ldw + p), _MM_HINT_T0);
            __m512 xv = _mm512_loadu_ps(x + p);
            for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(xv, widen16(wj + r * ldw + p), acc[r]);
        }
        if (p < k) {
            __mmask16 mask = (__mmask16)((1u << (k - p)) - 1u);
            __m512 xv = _mm512_maskz_loadu_ps(mask, x + p);
            for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(xv, widen16_masked(wj + r * ldw + p, mask), acc[r]);
        }
        for (int r = 0; r < 8; r++) store_scaled(y + j + r, _mm512_reduce_add_ps(acc[r]), alpha, beta);
    }
    for (; j < n; j += 4) {
        size_t nb = n - j < 4 ? n - j : 4;
        const uint16_t *wj = w + j * ldw;
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

AVX512 static void nt_avx512(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                             const uint16_t *w, size_t ldw, float beta, float *y, size_t ldy) {
    if (m == 1) { nt_one_row_avx512(n, k, alpha, x, w, ldw, beta, y); return; }
    for (size_t j = 0; j < n; j += 4) {
        const uint16_t *wj = w + j * ldw;
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

void mlatp_bf16_rows_nt(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                        const uint16_t *w, size_t ldw, float beta, float *y, size_t ldy, int isa) {
    switch (mlatp_isa_resolve(isa)) {
    case MLATP_ISA_AVX512: nt_avx512(m, n, k, alpha, x, ldx, w, ldw, beta, y, ldy); break;
    case MLATP_ISA_AVX2: nt_avx2(m, n, k, alpha, x, ldx, w, ldw, beta, y, ldy); break;
    default: nt_scalar(m, n, k, alpha, x, ldx, w, ldw, beta, y, ldy);
    }
}
