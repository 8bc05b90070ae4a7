// Internal to CKernels: loading bf16 weights widened to f32 in registers, and the epilogue
// shared by the row kernels.
#ifndef MLATP_WIDEN_H
#define MLATP_WIDEN_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

static ALWAYS_INLINE float widen_one(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/// y = alpha · s + beta · y, where beta = 0 overwrites y (NaN included), as BLAS does.
static ALWAYS_INLINE void store_scaled(float *y, float s, float alpha, float beta) {
    *y = beta == 0 ? alpha * s : alpha * s + beta * *y;
}

AVX2 static ALWAYS_INLINE __m256 widen8(const uint16_t *p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

AVX2 static ALWAYS_INLINE float sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX512 static ALWAYS_INLINE __m512 widen16(const uint16_t *p) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

AVX512 static ALWAYS_INLINE __m512 widen16_masked(const uint16_t *p, __mmask16 m) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

#endif
