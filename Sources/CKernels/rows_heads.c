// The absorbed decode's per-head products in one call: for each head h the bf16 row kernel on
// that head's slice of the activations, of the weight and of the output. One pass over all the
// local heads' W_UK (or W_UV) blocks, each streamed once, instead of one call per head from Swift.
#include "ckernels.h"

void mlatp_bf16_rows_heads(int transB, size_t heads, size_t m, size_t n, size_t k, const float *x, size_t ldx, size_t xs,
                           const uint16_t *w, size_t ldw, size_t ws, float *y, size_t ldy, size_t ys, int isa) {
    int level = mlatp_isa_resolve(isa);
    for (size_t h = 0; h < heads; h++) {
        if (transB) mlatp_bf16_rows_nt(m, n, k, 1, x + h * xs, ldx, w + h * ws, ldw, 0, y + h * ys, ldy, level);
        else mlatp_bf16_rows_nn(m, n, k, 1, x + h * xs, ldx, w + h * ws, ldw, 0, y + h * ys, ldy, level);
    }
}
