// Internal to CKernels: how the row kernels read one weight row, in either stored format —
// bf16 values, or fp8 e4m3 bytes with one f32 scale per block × block tile (DeepSeek-V3's
// `weight_scale_inv`). An fp8 element is dequantized in registers exactly as a bf16 model holds
// it (e4m3 × scale in f32, then rounded to bf16), so the same tile code gives the same bits on
// either format. Blocks of plain codes inside one scale tile (32 columns on AVX2, 64 on AVX-512)
// take a table of the tile's eight mantissas instead (`fp8_ready32`/`fp8_ready64`, `fp8_fast8`/
// `w_fast16`): the same values in five instructions per eight or sixteen weights rather than
// seventeen. `kind` is a compile-time constant at
// every call site: after inlining, each kernel is specialised and the branch is gone.
#ifndef MLATP_WEIGHTS_H
#define MLATP_WEIGHTS_H

#include "widen.h"
#include <math.h>

enum { W_BF16 = 0, W_FP8 = 1 };

/// A weight `[n, k]` (PyTorch's `[out, in]`), row-major with leading dimension `ldw` elements.
typedef struct {
    const void *w;            // uint16_t (bf16) or uint8_t (e4m3) elements
    size_t ldw;
    const float *scales;      // fp8: [scale rows, lds]
    size_t lds;
    const int32_t *row_scale; // fp8: the scale row of each weight row, or NULL: row r's is (row0 + r) / block
    size_t row0;              // fp8: where row 0 sits in its scale block's rows (used without row_scale)
    size_t col0;              // fp8: where column 0 sits in its scale block's columns
    size_t block;             // fp8: block size (columns per scale)
    size_t cols;              // fp8: the row length the kernel walks (a plain-code check reads no further)
} wsrc;

static ALWAYS_INLINE uint32_t w_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static ALWAYS_INLINE float w_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/// Where column p sits on the tile grid: its scale column `idx`, and `bound`, the first column
/// past that tile. Kept as the kernels walk p upwards, so that no load divides.
typedef struct { size_t idx, bound; } colpos;

static ALWAYS_INLINE colpos col_start(const wsrc *s) {
    colpos c = { s->col0 / s->block, s->block - s->col0 % s->block };
    return c;
}

static ALWAYS_INLINE void col_advance(const wsrc *s, colpos *c, size_t p) {
    while (p >= c->bound) { c->idx++; c->bound += s->block; }
}

/// The scale of column p + l, for l ≥ 0 past `c` (the tile of p).
static ALWAYS_INLINE float lane_scale(const wsrc *s, const float *srow, colpos c, size_t p, size_t l) {
    return p + l < c.bound ? srow[c.idx] : srow[c.idx + 1 + (p + l - c.bound) / s->block];
}

static ALWAYS_INLINE const float *scale_row(const wsrc *s, size_t row) {
    size_t r = s->row_scale ? (size_t)s->row_scale[row] : (s->row0 + row) / s->block;
    return s->scales + r * s->lds;
}
static ALWAYS_INLINE float col_scale(const wsrc *s, const float *srow, size_t p) { return srow[(s->col0 + p) / s->block]; }

/// One weight row's fp8 read state in a tile: its scale row, and (AVX2) the eight values
/// bf16(1.mmm × scale) of the scale tile `idx` it last read, with the exponent bias 7 taken off,
/// so that a code's value is its mantissa's entry plus its exponent bits (`fp8_fast8`).
typedef struct {
    float t[16] __attribute__((aligned(64)));   // the eight entries twice: AVX-512's vpermd reads four index bits
    const float *srow;
    size_t idx;        // the tile `t` was made for; SIZE_MAX before the first
    int ok;            // t holds: the scale lies where every product is a normal f32 (2^-100 … 2^100)
} fp8row;

/// Before a tile walks its columns: the fp8 scale rows of its `nb` weight rows from row j (into
/// `fr`), and the tile of column 0. Nothing for bf16.
static ALWAYS_INLINE colpos fp8_begin(const int kind, const wsrc *s, size_t j, int nb, fp8row *fr) {
    colpos c = {0, 0};
    if (kind == W_FP8) {
        for (int r = 0; r < nb; r++) { fr[r].srow = scale_row(s, j + r); fr[r].idx = (size_t)-1; fr[r].ok = 0; }
        c = col_start(s);
    }
    return c;
}

/// One e4m3 byte as the f32 value a bf16 model holds: bf16(e4m3 × scale), NaN (0x7f, 0xff) kept NaN.
static ALWAYS_INLINE float fp8_one(uint8_t b, float scale) {
    uint32_t mag = b & 0x7fu;
    if (mag == 0x7fu) return w_float(((uint32_t)(b & 0x80u) << 24) | 0x7fc00000u);
    float f = w_float(mag << 20) * 0x1p120f;   // exponent rebias 7 → 127; subnormals land exactly too
    if (b & 0x80u) f = -f;
    uint32_t u = w_bits(f * scale);
    if ((u & 0x7fffffffu) > 0x7f800000u) return w_float((u & 0xffff0000u) | 0x00400000u);
    return w_float((u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u);
}

static ALWAYS_INLINE float w_one(const int kind, const wsrc *s, size_t row, size_t p) {
    if (kind == W_BF16) return widen_one(((const uint16_t *)s->w)[row * s->ldw + p]);
    return fp8_one(((const uint8_t *)s->w)[row * s->ldw + p], col_scale(s, scale_row(s, row), p));
}

/// The address of element p of row `row`, for prefetching.
static ALWAYS_INLINE const char *w_addr(const int kind, const wsrc *s, size_t row, size_t p) {
    return kind == W_BF16 ? (const char *)((const uint16_t *)s->w + row * s->ldw + p)
                          : (const char *)((const uint8_t *)s->w + row * s->ldw + p);
}

// ---- AVX2: eight lanes

/// The scales of columns p ..< p+8: one broadcast unless a tile boundary falls inside.
AVX2 static ALWAYS_INLINE __m256 scales8(const wsrc *s, const float *srow, colpos c, size_t p) {
    if (p + 8 <= c.bound) return _mm256_set1_ps(srow[c.idx]);
    float lanes[8];
    for (int l = 0; l < 8; l++) lanes[l] = lane_scale(s, srow, c, p, (size_t)l);
    return _mm256_loadu_ps(lanes);
}

/// bf16(e4m3 × scale) for eight lanes whose e4m3 bytes are widened to 32 bits in `v`.
AVX2 static ALWAYS_INLINE __m256 fp8_lanes8(__m256i v, __m256 scale) {
    __m256i mag = _mm256_and_si256(v, _mm256_set1_epi32(0x7f));
    __m256 f = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(mag, 20)), _mm256_set1_ps(0x1p120f));
    __m256i sign = _mm256_slli_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x80)), 24);
    f = _mm256_mul_ps(_mm256_or_ps(f, _mm256_castsi256_ps(sign)), scale);
    __m256i u = _mm256_castps_si256(f);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    u = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    u = _mm256_and_si256(u, _mm256_set1_epi32((int)0xffff0000u));
    __m256i nan = _mm256_or_si256(sign, _mm256_set1_epi32(0x7fc00000));
    return _mm256_castsi256_ps(_mm256_blendv_epi8(u, nan, _mm256_cmpeq_epi32(mag, _mm256_set1_epi32(0x7f))));
}

/// The row's table for scale tile c.idx: the eight bit patterns bf16(1.mmm × scale) − 7·2^23, with
/// `idx` and `ok` set. Where the scale lies in 2^-100 … 2^100, every normal code's product is a
/// normal f32, so bf16(2^(e-7) · 1.mmm × scale) = 2^(e-7) · bf16(1.mmm × scale) exactly: scaling by
/// a power of two changes neither the f32 nor the bf16 rounding.
AVX2 static ALWAYS_INLINE __m256i fp8_table_entries(fp8row *fr, colpos c) {
    float scale = fr->srow[c.idx];
    fr->idx = c.idx;
    fr->ok = scale >= 0x1p-100f && scale <= 0x1p100f;
    __m256 f = _mm256_mul_ps(_mm256_setr_ps(1.0f, 1.125f, 1.25f, 1.375f, 1.5f, 1.625f, 1.75f, 1.875f), _mm256_set1_ps(scale));
    __m256i u = _mm256_castps_si256(f);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    u = _mm256_and_si256(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), _mm256_set1_epi32((int)0xffff0000u));
    return _mm256_sub_epi32(u, _mm256_set1_epi32(7 << 23));
}

/// The table as AVX2 reads it: the eight entries in t[0 ..< 8].
AVX2 static ALWAYS_INLINE void fp8_table(fp8row *fr, colpos c) { _mm256_store_si256((__m256i *)fr->t, fp8_table_entries(fr, c)); }

/// The table as AVX-512 reads it: the eight entries twice, written with one 64-byte store (two
/// 32-byte stores read back as one 64-byte load miss store forwarding and stall the load).
AVX512 static ALWAYS_INLINE void fp8_table16(fp8row *fr, colpos c) {
    _mm512_store_si512((void *)fr->t, _mm512_broadcast_i64x4(fp8_table_entries(fr, c)));
}

/// Eight plain codes (no zero, subnormal or NaN) of one scale tile through the row's table: the
/// mantissa picks the entry (vpermd reads the low three bits of each lane), the exponent bits are
/// added to its exponent and the sign bit to its sign. Five instructions for eight weights, where
/// `fp8_lanes8` takes about seventeen; the bits are the same.
AVX2 static ALWAYS_INLINE __m256 fp8_fast8(const uint8_t *q, const fp8row *fr) {
    __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q));        // sign-extended: bits 8… are the sign
    __m256i e = _mm256_and_si256(_mm256_slli_epi32(v, 20), _mm256_set1_epi32((int)0x87800000u));
    __m256i t = _mm256_permutevar8x32_epi32(_mm256_load_si256((const __m256i *)fr->t), v);
    return _mm256_castsi256_ps(_mm256_add_epi32(t, e));
}

/// Whether the `nb` rows from row j take `fp8_fast8` for the 32 columns from p: inside one scale
/// tile (c, the tile of p), each row's scale in its table's range, and no code among them a zero,
/// a subnormal or a NaN (the magnitudes u with (u + 1) mod 128 < 9: one signed compare per byte).
/// Makes the rows' tables for a new tile.
AVX2 static ALWAYS_INLINE int fp8_ready32(const wsrc *s, size_t j, int nb, fp8row *fr, size_t p, colpos c) {
    if (p + 32 > c.bound || p + 32 > s->cols) return 0;
    __m256i bad = _mm256_setzero_si256();
    for (int r = 0; r < nb; r++) {
        if (fr[r].idx != c.idx) fp8_table(&fr[r], c);
        if (!fr[r].ok) return 0;
        __m256i v = _mm256_loadu_si256((const __m256i *)((const uint8_t *)s->w + (j + r) * s->ldw + p));
        __m256i u = _mm256_and_si256(_mm256_add_epi8(v, _mm256_set1_epi8(1)), _mm256_set1_epi8(0x7f));
        bad = _mm256_or_si256(bad, _mm256_cmpgt_epi8(_mm256_set1_epi8(9), u));
    }
    return _mm256_testz_si256(bad, bad);
}

/// `fp8_ready32` for 64 columns, on AVX-512's byte compares.
AVX512 static ALWAYS_INLINE int fp8_ready64(const wsrc *s, size_t j, int nb, fp8row *fr, size_t p, colpos c) {
    if (p + 64 > c.bound || p + 64 > s->cols) return 0;
    __mmask64 bad = 0;
    for (int r = 0; r < nb; r++) {
        if (fr[r].idx != c.idx) fp8_table16(&fr[r], c);
        if (!fr[r].ok) return 0;
        __m512i v = _mm512_loadu_si512((const void *)((const uint8_t *)s->w + (j + r) * s->ldw + p));
        __m512i u = _mm512_and_si512(_mm512_add_epi8(v, _mm512_set1_epi8(1)), _mm512_set1_epi8(0x7f));
        bad |= _mm512_cmplt_epu8_mask(u, _mm512_set1_epi8(9));
    }
    return bad == 0;
}

/// Eight elements of row `row` from column p (fp8: `srow` is the row's scales, `c` the tile of p).
AVX2 static ALWAYS_INLINE __m256 w_load8(const int kind, const wsrc *s, size_t row, size_t p, const float *srow, colpos c) {
    if (kind == W_BF16) return widen8((const uint16_t *)s->w + row * s->ldw + p);
    const uint8_t *q = (const uint8_t *)s->w + row * s->ldw + p;
    __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)q));
    return fp8_lanes8(v, scales8(s, srow, c, p));
}

/// Row `row`'s eight elements from column p in a block `fp8_ready32` cleared (fp8 only).
AVX2 static ALWAYS_INLINE __m256 w_fast8(const wsrc *s, size_t row, size_t p, const fp8row *fr) {
    return fp8_fast8((const uint8_t *)s->w + row * s->ldw + p, fr);
}

// ---- AVX-512: sixteen lanes, masked tails

/// The scales of columns p ..< p+count (count ≤ 16; lanes past count get the last one's).
AVX512 static ALWAYS_INLINE __m512 scales16(const wsrc *s, const float *srow, colpos c, size_t p, int count) {
    if (p + 16 <= c.bound) return _mm512_set1_ps(srow[c.idx]);
    float lanes[16];
    for (int l = 0; l < 16; l++) lanes[l] = lane_scale(s, srow, c, p, (size_t)(l < count ? l : count - 1));
    return _mm512_loadu_ps(lanes);
}

AVX512 static ALWAYS_INLINE __m512 fp8_lanes16(__m512i v, __m512 scale) {
    __m512i mag = _mm512_and_si512(v, _mm512_set1_epi32(0x7f));
    __m512 f = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(mag, 20)), _mm512_set1_ps(0x1p120f));
    __m512i sign = _mm512_slli_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0x80)), 24);
    f = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(f), sign)), scale);
    __m512i u = _mm512_castps_si512(f);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    u = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    u = _mm512_and_si512(u, _mm512_set1_epi32((int)0xffff0000u));
    __mmask16 nan = _mm512_cmpeq_epi32_mask(mag, _mm512_set1_epi32(0x7f));
    return _mm512_castsi512_ps(_mm512_mask_mov_epi32(u, nan, _mm512_or_si512(sign, _mm512_set1_epi32(0x7fc00000))));
}

/// `fp8_fast8` for sixteen lanes: vpermd's index is the code's low four bits, the mantissa and
/// the exponent's lowest bit, so the table holds its eight entries twice.
AVX512 static ALWAYS_INLINE __m512 w_fast16(const wsrc *s, size_t row, size_t p, const fp8row *fr) {
    const uint8_t *q = (const uint8_t *)s->w + row * s->ldw + p;
    __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q));
    __m512i e = _mm512_and_si512(_mm512_slli_epi32(v, 20), _mm512_set1_epi32((int)0x87800000u));
    __m512i t = _mm512_permutexvar_epi32(v, _mm512_load_si512((const void *)fr->t));
    return _mm512_castsi512_ps(_mm512_add_epi32(t, e));
}

AVX512 static ALWAYS_INLINE __m512 w_load16(const int kind, const wsrc *s, size_t row, size_t p, const float *srow, colpos c) {
    if (kind == W_BF16) return widen16((const uint16_t *)s->w + row * s->ldw + p);
    const uint8_t *q = (const uint8_t *)s->w + row * s->ldw + p;
    __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q));
    return fp8_lanes16(v, scales16(s, srow, c, p, 16));
}

AVX512 static ALWAYS_INLINE __m512 w_load16_masked(const int kind, const wsrc *s, size_t row, size_t p, const float *srow, colpos c,
                                                   __mmask16 m) {
    if (kind == W_BF16) return widen16_masked((const uint16_t *)s->w + row * s->ldw + p, m);
    const uint8_t *q = (const uint8_t *)s->w + row * s->ldw + p;
    __m512i v = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, q));
    return fp8_lanes16(v, scales16(s, srow, c, p, __builtin_popcount(m)));
}

#endif
