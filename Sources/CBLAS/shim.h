// CBLAS: OpenBLAS's CBLAS interface. No stable API: only TensorCore uses it.
#ifndef MLATP_CBLAS_SHIM_H
#define MLATP_CBLAS_SHIM_H
#include <cblas.h>
#endif
