// Internal to CKernels: the AVX-512 decode kernels (rows_nt_avx512.c), called by rows_nt.c's entry points.
#ifndef MLATP_ROWS_NT_H
#define MLATP_ROWS_NT_H

#include "weights.h"

AVX512
void mlatp_nt_avx512_bf16(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx, const wsrc *w, float beta, float *y, size_t ldy);
AVX512
void mlatp_nt_avx512_fp8(size_t m, size_t n, size_t k, float alpha, const float *x, size_t ldx, const wsrc *w, float beta, float *y, size_t ldy);

#endif
