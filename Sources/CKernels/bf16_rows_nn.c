// y = alpha · x · w + beta · y for a few f32 rows x [m, k] and a bf16 weight w [k, n]
// ([in, out]). The weight is streamed in blocks of eight rows (eight sequential streams); each
// 16- or 8-column piece of them is widened once in registers and applied to every x row of a
// group of up to eight, whose y row stays in cache.
#include "ckernels.h"
#include "widen.h"

enum { ROWS = 8, GROUP = 8, DEPTH = 32, PREFETCH_MAX_N = 4096 };

/// coef[i][r] = alpha · x[i, p + r] for the group's rows, so the inner loops only broadcast.
static ALWAYS_INLINE void coefficients(float coef[GROUP][ROWS], size_t mb, size_t rows, float alpha,
                                       const float *x, size_t ldx, size_t p) {
    for (size_t i = 0; i < mb; i++) for (size_t r = 0; r < rows; r++) coef[i][r] = alpha * x[i * ldx + p + r];
}

static void nn_scalar(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                      const uint16_t *w, size_t ldw, float *y, size_t ldy) {
    for (size_t p = 0; p < k; p++)
        for (size_t i = 0; i < m; i++) {
            float c = alpha * x[i * ldx + p];
            for (size_t j = 0; j < n; j++) y[i * ldy + j] += c * widen_one(w[p * ldw + j]);
        }
}

AVX2 static void nn_avx2(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                         const uint16_t *w, size_t ldw, float *y, size_t ldy) {
    float coef[GROUP][ROWS];
    size_t p = 0;
    for (; p + ROWS <= k; p += ROWS) {
        const uint16_t *wp = w + p * ldw;
        size_t left = k - p - ROWS, next = n > PREFETCH_MAX_N ? 0 : (left < ROWS ? left : ROWS);
        for (size_t i0 = 0; i0 < m; i0 += GROUP) {
            size_t mb = m - i0 < GROUP ? m - i0 : GROUP;
            coefficients(coef, mb, ROWS, alpha, x + i0 * ldx, ldx, p);
            size_t j = 0;
            for (; j + 8 <= n; j += 8) {
                if (i0 == 0 && (j & 31) == 0)
                    for (size_t r = 0; r < next; r++) _mm_prefetch((const char *)(wp + (ROWS + r) * ldw + j), _MM_HINT_T0);
                __m256 wv[ROWS];
                for (int r = 0; r < ROWS; r++) wv[r] = widen8(wp + r * ldw + j);
                for (size_t i = 0; i < mb; i++) {
                    float *yi = y + (i0 + i) * ldy + j;
                    __m256 t0 = _mm256_mul_ps(_mm256_set1_ps(coef[i][0]), wv[0]);
                    __m256 t1 = _mm256_mul_ps(_mm256_set1_ps(coef[i][2]), wv[2]);
                    __m256 t2 = _mm256_mul_ps(_mm256_set1_ps(coef[i][4]), wv[4]);
                    __m256 t3 = _mm256_mul_ps(_mm256_set1_ps(coef[i][6]), wv[6]);
                    t0 = _mm256_fmadd_ps(_mm256_set1_ps(coef[i][1]), wv[1], t0);
                    t1 = _mm256_fmadd_ps(_mm256_set1_ps(coef[i][3]), wv[3], t1);
                    t2 = _mm256_fmadd_ps(_mm256_set1_ps(coef[i][5]), wv[5], t2);
                    t3 = _mm256_fmadd_ps(_mm256_set1_ps(coef[i][7]), wv[7], t3);
                    __m256 s = _mm256_add_ps(_mm256_add_ps(t0, t1), _mm256_add_ps(t2, t3));
                    _mm256_storeu_ps(yi, _mm256_add_ps(_mm256_loadu_ps(yi), s));
                }
            }
            for (; j < n; j++)
                for (size_t i = 0; i < mb; i++) {
                    float s = 0;
                    for (int r = 0; r < ROWS; r++) s += coef[i][r] * widen_one(wp[r * ldw + j]);
                    y[(i0 + i) * ldy + j] += s;
                }
        }
    }
    if (p < k) nn_scalar(m, n, k - p, alpha, x + p, ldx, w + p * ldw, ldw, y, ldy);
}

/// One 16-column piece (masked to the columns left) of `rows` ≤ DEPTH weight rows, applied to the
/// group's MB x rows, whose y pieces stay in registers across all the rows (so y moves once per
/// DEPTH weight rows, not once per eight).
AVX512 static ALWAYS_INLINE void nn_piece_avx512(const int MB, const uint16_t *wp, size_t ldw, __mmask16 mask, size_t rows,
                                                 float coef[GROUP][DEPTH], float *y, size_t ldy) {
    __m512 acc[GROUP];
    for (int i = 0; i < MB; i++) acc[i] = _mm512_maskz_loadu_ps(mask, y + i * ldy);
    size_t r = 0;
    for (; r + 8 <= rows; r += 8) {
        __m512 wv[8];
        for (int q = 0; q < 8; q++) wv[q] = widen16_masked(wp + (r + q) * ldw, mask);
        for (int i = 0; i < MB; i++) {
            const float *c = coef[i] + r;
            __m512 t0 = _mm512_mul_ps(_mm512_set1_ps(c[0]), wv[0]);
            __m512 t1 = _mm512_mul_ps(_mm512_set1_ps(c[2]), wv[2]);
            __m512 t2 = _mm512_mul_ps(_mm512_set1_ps(c[4]), wv[4]);
            __m512 t3 = _mm512_mul_ps(_mm512_set1_ps(c[6]), wv[6]);
            t0 = _mm512_fmadd_ps(_mm512_set1_ps(c[1]), wv[1], t0);
            t1 = _mm512_fmadd_ps(_mm512_set1_ps(c[3]), wv[3], t1);
            t2 = _mm512_fmadd_ps(_mm512_set1_ps(c[5]), wv[5], t2);
            t3 = _mm512_fmadd_ps(_mm512_set1_ps(c[7]), wv[7], t3);
            acc[i] = _mm512_add_ps(acc[i], _mm512_add_ps(_mm512_add_ps(t0, t1), _mm512_add_ps(t2, t3)));
        }
    }
    for (; r < rows; r++) {
        __m512 w1 = widen16_masked(wp + r * ldw, mask);
        for (int i = 0; i < MB; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(coef[i][r]), w1, acc[i]);
    }
    for (int i = 0; i < MB; i++) _mm512_mask_storeu_ps(y + i * ldy, mask, acc[i]);
}

/// Every 16-column piece of one block of `rows` weight rows for a group of MB x rows; for narrow
/// weights, whose short rows the hardware prefetcher does not follow, the next block's lines are
/// prefetched on the way (measured: on wide ones it costs bandwidth).
AVX512 static ALWAYS_INLINE void nn_block_avx512(const int MB, size_t n, const uint16_t *wp, size_t ldw, size_t rows,
                                                 size_t next_rows, float coef[GROUP][DEPTH], float *y, size_t ldy) {
    if (n > PREFETCH_MAX_N) next_rows = 0;
    size_t j = 0;
    for (; j + 16 <= n; j += 16) {
        if ((j & 31) == 0)
            for (size_t r = 0; r < next_rows; r++) _mm_prefetch((const char *)(wp + (rows + r) * ldw + j), _MM_HINT_T0);
        nn_piece_avx512(MB, wp + j, ldw, 0xffff, rows, coef, y + j, ldy);
    }
    if (j < n) nn_piece_avx512(MB, wp + j, ldw, (__mmask16)((1u << (n - j)) - 1u), rows, coef, y + j, ldy);
}

AVX512 static void nn_avx512(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                             const uint16_t *w, size_t ldw, float *y, size_t ldy) {
    // One or two x rows: eight weight rows per pass (eight streams); more: 32, so that the y rows,
    // loaded and stored once per pass, cost less than the weight (measured at m = 4 and 8).
    size_t depth = m <= 2 ? ROWS : DEPTH;
    float coef[GROUP][DEPTH];
    for (size_t p = 0; p < k; p += depth) {
        size_t rows = k - p < depth ? k - p : depth, left = k - p - rows, next = left < depth ? left : depth;
        const uint16_t *wp = w + p * ldw;
        for (size_t i0 = 0; i0 < m; i0 += GROUP) {
            size_t mb = m - i0 < GROUP ? m - i0 : GROUP;
            for (size_t i = 0; i < mb; i++) for (size_t r = 0; r < rows; r++) coef[i][r] = alpha * x[(i0 + i) * ldx + p + r];
            float *y0 = y + i0 * ldy;
            switch (mb) {
            case 8: nn_block_avx512(8, n, wp, ldw, rows, next, coef, y0, ldy); break;
            case 7: nn_block_avx512(7, n, wp, ldw, rows, next, coef, y0, ldy); break;
            case 6: nn_block_avx512(6, n, wp, ldw, rows, next, coef, y0, ldy); break;
            case 5: nn_block_avx512(5, n, wp, ldw, rows, next, coef, y0, ldy); break;
            case 4: nn_block_avx512(4, n, wp, ldw, rows, next, coef, y0, ldy); break;
            case 3: nn_block_avx512(3, n, wp, ldw, rows, next, coef, y0, ldy); break;
            case 2: nn_block_avx512(2, n, wp, ldw, rows, next, coef, y0, ldy); break;
            default: nn_block_avx512(1, n, wp, ldw, rows, next, coef, y0, ldy);
            }
        }
    }
}

void mlatp_bf16_rows_nn(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx,
                        const uint16_t *w, size_t ldw, float beta, float *y, size_t ldy, int isa) {
    for (size_t i = 0; i < m; i++)        // y = beta · y first; beta = 0 overwrites (NaN included)
        for (size_t j = 0; j < n; j++) y[i * ldy + j] = beta == 0 ? 0 : (beta == 1 ? y[i * ldy + j] : beta * y[i * ldy + j]);
    switch (mlatp_isa_resolve(isa)) {
    case MLATP_ISA_AVX512: nn_avx512(m, n, k, alpha, x, ldx, w, ldw, y, ldy); break;
    case MLATP_ISA_AVX2: nn_avx2(m, n, k, alpha, x, ldx, w, ldw, y, ldy); break;
    default: nn_scalar(m, n, k, alpha, x, ldx, w, ldw, y, ldy);
    }
}
