// CDNNL: oneDNN's C API (Debian's libdnnl-dev, oneDNN 2.6; it ships no pkg-config file, so the
// module map links -ldnnl itself). No stable API: only TensorCore uses it.
#ifndef MLATP_CDNNL_SHIM_H
#define MLATP_CDNNL_SHIM_H
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

// Execution-argument indices, as functions: the header defines them as macros of macros.
static inline int mlatp_dnnl_arg_src(void) { return DNNL_ARG_SRC; }
static inline int mlatp_dnnl_arg_weights(void) { return DNNL_ARG_WEIGHTS; }
static inline int mlatp_dnnl_arg_dst(void) { return DNNL_ARG_DST; }
static inline int mlatp_dnnl_arg_from(void) { return DNNL_ARG_FROM; }
static inline int mlatp_dnnl_arg_to(void) { return DNNL_ARG_TO; }
/// A memory object created without a buffer (the handle is set before each execution).
static inline void *mlatp_dnnl_memory_none(void) { return DNNL_MEMORY_NONE; }
#endif
