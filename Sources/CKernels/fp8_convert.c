// fp8 e4m3 (OCP FP8, as DeepSeek-V3 stores its weights: 1 sign, 4 exponent bits with bias 7,
// 3 mantissa bits, no infinities, 0x7f/0xff NaN, largest finite ±448) with one f32 scale per
// block × block tile: quantizing f32 values, and dequantizing a tile into bf16 for a GEMM.
#include "ckernels.h"
#include "weights.h"

float mlatp_absmax(const float *src, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(src[i]);
        if (a > m || a != a) m = a;   // a NaN is kept: the caller refuses it
        if (m != m) return m;
    }
    return m;
}

uint8_t mlatp_fp8_encode_one(float v) {
    uint32_t u = w_bits(v);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) return sign | 0x7fu;                 // NaN
    float a = w_float(u);
    if (a >= 448.0f) return sign | 0x7eu;                      // saturate (no infinities in e4m3)
    if (a < 0x1p-6f) {                                         // subnormals: steps of 2^-9
        float t = a * 512.0f;                                  // exact
        uint32_t q = (uint32_t)t;
        float frac = t - (float)q;
        if (frac > 0.5f || (frac == 0.5f && (q & 1u))) q++;   // to nearest, ties to even
        return sign | (uint8_t)q;                              // q = 8 is 2^-6, the smallest normal
    }
    uint32_t r = (u + 0x7ffffu + ((u >> 20) & 1u)) >> 20;     // exponent and 3 mantissa bits, rounded
    uint32_t code = r - ((127u - 7u) << 3);                    // rebias 127 → 7
    return sign | (uint8_t)(code > 0x7eu ? 0x7eu : code);
}

void mlatp_fp8_encode(const float *src, uint8_t *dst, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) dst[i] = mlatp_fp8_encode_one(src[i] / scale);
}

/// Eight values at dst[at…] as f32 (`bf16out` 0) or as their bf16 bit patterns (1).
AVX2 static ALWAYS_INLINE void store8(const int bf16out, __m256 v, void *dst, size_t at) {
    if (bf16out) {
        __m256i u = _mm256_srli_epi32(_mm256_castps_si256(v), 16);
        _mm_storeu_si128((__m128i *)((uint16_t *)dst + at), _mm_packus_epi32(_mm256_castsi256_si128(u), _mm256_extracti128_si256(u, 1)));
    } else {
        _mm256_storeu_ps((float *)dst + at, v);
    }
}

/// Rows of the fp8 block as the bf16 values a bf16 model holds, stored as f32 (`bf16out` 0) or as
/// their bf16 bit patterns (1); `bf16out` is a constant at each call, so each variant is specialised.
/// Blocks of 32 plain codes take the table route (`fp8_ready32`), the rest the general one.
AVX2 static ALWAYS_INLINE void dequant_avx2(const int bf16out, size_t rows, size_t cols, const wsrc *s, void *dst, size_t ldd) {
    for (size_t r = 0; r < rows; r++) {
        size_t p = 0;
        fp8row fr;
        colpos cp = fp8_begin(W_FP8, s, r, 1, &fr);
        while (p + 8 <= cols) {
            col_advance(s, &cp, p);
            if (fp8_ready32(s, r, 1, &fr, p, cp)) {
                for (int q = 0; q < 4; q++, p += 8) store8(bf16out, w_fast8(s, r, p, &fr), dst, r * ldd + p);
                continue;
            }
            store8(bf16out, w_load8(W_FP8, s, r, p, fr.srow, cp), dst, r * ldd + p);
            p += 8;
        }
        for (; p < cols; p++) {
            float v = w_one(W_FP8, s, r, p);
            if (bf16out) ((uint16_t *)dst)[r * ldd + p] = (uint16_t)(w_bits(v) >> 16);
            else ((float *)dst)[r * ldd + p] = v;
        }
    }
}

AVX2 static void dequant_f32_avx2(size_t rows, size_t cols, const wsrc *s, float *dst, size_t ldd) { dequant_avx2(0, rows, cols, s, dst, ldd); }
AVX2 static void dequant_bf16_avx2(size_t rows, size_t cols, const wsrc *s, uint16_t *dst, size_t ldd) { dequant_avx2(1, rows, cols, s, dst, ldd); }

/// Sixteen values at dst[at…] as f32 or as their bf16 bit patterns, the first `count`.
AVX512 static ALWAYS_INLINE void store16(const int bf16out, __m512 v, void *dst, size_t at, __mmask16 m) {
    if (bf16out) _mm256_mask_storeu_epi16((uint16_t *)dst + at, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(v), 16)));
    else _mm512_mask_storeu_ps((float *)dst + at, m, v);
}

/// `dequant_avx2` sixteen lanes wide: 64 plain columns at a time through the row's table.
AVX512 static ALWAYS_INLINE void dequant_avx512(const int bf16out, size_t rows, size_t cols, const wsrc *s, void *dst, size_t ldd) {
    for (size_t r = 0; r < rows; r++) {
        size_t p = 0;
        fp8row fr;
        colpos cp = fp8_begin(W_FP8, s, r, 1, &fr);
        while (p < cols) {
            col_advance(s, &cp, p);
            if (fp8_ready64(s, r, 1, &fr, p, cp)) {
                for (int q = 0; q < 4; q++, p += 16) store16(bf16out, w_fast16(s, r, p, &fr), dst, r * ldd + p, 0xffff);
                continue;
            }
            size_t count = cols - p < 16 ? cols - p : 16;
            __mmask16 m = (__mmask16)((1u << count) - 1u);
            store16(bf16out, w_load16_masked(W_FP8, s, r, p, fr.srow, cp, m), dst, r * ldd + p, m);
            p += count;
        }
    }
}

AVX512 static void dequant_f32_avx512(size_t rows, size_t cols, const wsrc *s, float *dst, size_t ldd) { dequant_avx512(0, rows, cols, s, dst, ldd); }
AVX512 static void dequant_bf16_avx512(size_t rows, size_t cols, const wsrc *s, uint16_t *dst, size_t ldd) { dequant_avx512(1, rows, cols, s, dst, ldd); }

void mlatp_fp8_dequant_f32(size_t rows, size_t cols, const uint8_t *w, size_t ldw, const float *scales, size_t lds,
                           const int32_t *row_scale, size_t row0, size_t col0, size_t block, float *dst, size_t ldd, int isa) {
    wsrc s = { .w = w, .ldw = ldw, .scales = scales, .lds = lds, .row_scale = row_scale, .row0 = row0, .col0 = col0, .block = block, .cols = cols };
    int level = mlatp_isa_resolve(isa);
    if (level == MLATP_ISA_AVX512) { dequant_f32_avx512(rows, cols, &s, dst, ldd); return; }
    if (level == MLATP_ISA_AVX2) { dequant_f32_avx2(rows, cols, &s, dst, ldd); return; }
    for (size_t r = 0; r < rows; r++)
        for (size_t p = 0; p < cols; p++) dst[r * ldd + p] = w_one(W_FP8, &s, r, p);
}

static void dequant_scalar(size_t rows, size_t cols, const wsrc *s, uint16_t *dst, size_t ldd) {
    for (size_t r = 0; r < rows; r++)
        for (size_t p = 0; p < cols; p++) dst[r * ldd + p] = (uint16_t)(w_bits(w_one(W_FP8, s, r, p)) >> 16);
}

void mlatp_fp8_dequant_bf16(size_t rows, size_t cols, const uint8_t *w, size_t ldw, const float *scales, size_t lds,
                            const int32_t *row_scale, size_t row0, size_t col0, size_t block, uint16_t *dst, size_t ldd, int isa) {
    wsrc s = { .w = w, .ldw = ldw, .scales = scales, .lds = lds, .row_scale = row_scale, .row0 = row0, .col0 = col0, .block = block, .cols = cols };
    int level = mlatp_isa_resolve(isa);
    if (level == MLATP_ISA_AVX512) dequant_bf16_avx512(rows, cols, &s, dst, ldd);
    else if (level == MLATP_ISA_AVX2) dequant_bf16_avx2(rows, cols, &s, dst, ldd);
    else dequant_scalar(rows, cols, &s, dst, ldd);
}
