// f32 ↔ bf16 conversions, one variant per instruction set. Rounding is to nearest even by
// integer arithmetic on the bit pattern (add 0x7FFF plus the kept part's lowest bit, then
// truncate), which also carries values past the largest bf16 to ±Inf; NaNs are kept NaN by
// setting the quiet bit, so that a NaN whose payload sits in the dropped half cannot become Inf.
#include "ckernels.h"
#include <immintrin.h>
#include <string.h>

static inline uint32_t float_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline uint16_t round_one(float f) {
    uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// ---- scalar

static void round_scalar(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = round_one(src[i]);
}

static void widen_scalar(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bits_float((uint32_t)src[i] << 16);
}

static void round_f32_scalar(const float *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bits_float((uint32_t)round_one(src[i]) << 16);
}

static void chain_sum_scalar(const uint16_t *const *parts, size_t count, float *out, size_t from, size_t n) {
    for (size_t i = from; i < n; i++) {
        float s = bits_float((uint32_t)parts[0][i] << 16);
        for (size_t r = 1; r < count; r++) s = bits_float((uint32_t)round_one(s + bits_float((uint32_t)parts[r][i] << 16)) << 16);
        out[i] = s;
    }
}

// ---- AVX2: eight lanes

__attribute__((target("avx2,fma")))
static inline __m256i round8(__m256 x) {
    __m256i u = _mm256_castps_si256(x);
    __m256i high = _mm256_srli_epi32(u, 16);
    __m256i lsb = _mm256_and_si256(high, _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    __m256i quiet = _mm256_or_si256(high, _mm256_set1_epi32(0x40));
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    return _mm256_blendv_epi8(r, quiet, _mm256_castps_si256(nan));   // 32-bit lanes holding 16-bit values
}

__attribute__((target("avx2,fma")))
static void round_avx2(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i r = round8(_mm256_loadu_ps(src + i));
        __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storeu_si128((__m128i *)(dst + i), packed);
    }
    round_scalar(src + i, dst + i, n - i);
}

__attribute__((target("avx2,fma")))
static void widen_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    widen_scalar(src + i, dst + i, n - i);
}

__attribute__((target("avx2,fma")))
static void round_f32_avx2(const float *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(round8(_mm256_loadu_ps(src + i)), 16)));
    round_f32_scalar(src + i, dst + i, n - i);
}

__attribute__((target("avx2,fma")))
static inline __m256 load_bf16x8(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

__attribute__((target("avx2,fma")))
static void chain_sum_avx2(const uint16_t *const *parts, size_t count, float *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 s = load_bf16x8(parts[0] + i);
        for (size_t r = 1; r < count; r++)
            s = _mm256_castsi256_ps(_mm256_slli_epi32(round8(_mm256_add_ps(s, load_bf16x8(parts[r] + i))), 16));
        _mm256_storeu_ps(out + i, s);
    }
    chain_sum_scalar(parts, count, out, i, n);
}

// ---- AVX-512: sixteen lanes, masked tails

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

AVX512 static inline __m512i round16(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i high = _mm512_srli_epi32(u, 16);
    __m512i lsb = _mm512_and_si512(high, _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(high, _mm512_set1_epi32(0x40)));
}

AVX512 static inline __mmask16 tail_mask(size_t left) { return (__mmask16)((1u << left) - 1u); }

AVX512 static void round_avx512(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(round16(_mm512_loadu_ps(src + i))));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_cvtepi32_storeu_epi16(dst + i, m, round16(_mm512_maskz_loadu_ps(m, src + i)));
    }
}

AVX512 static void widen_avx512(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, src + i));
        _mm512_mask_storeu_ps(dst + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
}

AVX512 static void round_f32_avx512(const float *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(round16(_mm512_loadu_ps(src + i)), 16)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512i r = round16(_mm512_maskz_loadu_ps(m, src + i));
        _mm512_mask_storeu_ps(dst + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(r, 16)));
    }
}

AVX512 static inline __m512 load_bf16x16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

AVX512 static void chain_sum_avx512(const uint16_t *const *parts, size_t count, float *out, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 s = load_bf16x16(parts[0] + i);
        for (size_t r = 1; r < count; r++)
            s = _mm512_castsi512_ps(_mm512_slli_epi32(round16(_mm512_add_ps(s, load_bf16x16(parts[r] + i))), 16));
        _mm512_storeu_ps(out + i, s);
    }
    chain_sum_scalar(parts, count, out, i, n);
}

// ---- dispatch

void mlatp_bf16_round(const float *src, uint16_t *dst, size_t n, int isa) {
    switch (mlatp_isa_resolve(isa)) {
    case MLATP_ISA_AVX512: round_avx512(src, dst, n); break;
    case MLATP_ISA_AVX2: round_avx2(src, dst, n); break;
    default: round_scalar(src, dst, n);
    }
}

void mlatp_bf16_chain_sum(const uint16_t *const *parts, size_t count, float *out, size_t n, int isa) {
    if (count == 0) return;
    switch (mlatp_isa_resolve(isa)) {
    case MLATP_ISA_AVX512: chain_sum_avx512(parts, count, out, n); break;
    case MLATP_ISA_AVX2: chain_sum_avx2(parts, count, out, n); break;
    default: chain_sum_scalar(parts, count, out, 0, n);
    }
}

void mlatp_bf16_widen(const uint16_t *src, float *dst, size_t n, int isa) {
    switch (mlatp_isa_resolve(isa)) {
    case MLATP_ISA_AVX512: widen_avx512(src, dst, n); break;
    case MLATP_ISA_AVX2: widen_avx2(src, dst, n); break;
    default: widen_scalar(src, dst, n);
    }
}

void mlatp_bf16_round_f32(const float *src, float *dst, size_t n, int isa) {
    switch (mlatp_isa_resolve(isa)) {
    case MLATP_ISA_AVX512: round_f32_avx512(src, dst, n); break;
    case MLATP_ISA_AVX2: round_f32_avx2(src, dst, n); break;
    default: round_f32_scalar(src, dst, n);
    }
}

void mlatp_bf16_widen_2d(size_t rows, size_t cols, const uint16_t *src, size_t lds, float *dst, size_t ldd, int isa) {
    int level = mlatp_isa_resolve(isa);
    for (size_t r = 0; r < rows; r++) mlatp_bf16_widen(src + r * lds, dst + r * ldd, cols, level);
}
