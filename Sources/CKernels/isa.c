// Run-time choice of instruction set, and the OpenMP thread count oneDNN runs with.
#include "ckernels.h"
#include <dlfcn.h>

int mlatp_isa_supported(void) {
    static int level = -2;
    if (level == -2) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
            level = MLATP_ISA_AVX512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            level = MLATP_ISA_AVX2;
        else
            level = MLATP_ISA_SCALAR;
    }
    return level;
}

int mlatp_isa_resolve(int isa) {
    int best = mlatp_isa_supported();
    return (isa < 0 || isa > best) ? best : isa;
}

// libgomp comes in as a dependency of libdnnl; look it up rather than link it, so that nothing
// here depends on which OpenMP runtime (if any) the process carries.
static void *openmp_symbol(const char *name) {
    const char *libraries[] = {"libgomp.so.1", "libiomp5.so", "libomp.so"};
    for (size_t i = 0; i < sizeof libraries / sizeof *libraries; i++) {
        void *handle = dlopen(libraries[i], RTLD_NOW | RTLD_NOLOAD);
        if (handle) {
            void *symbol = dlsym(handle, name);
            dlclose(handle);
            if (symbol) return symbol;
        }
    }
    return 0;
}

int mlatp_openmp_set_threads(int n) {
    void (*set)(int) = (void (*)(int))openmp_symbol("omp_set_num_threads");
    if (!set) return -1;
    set(n);
    return 0;
}

int mlatp_openmp_max_threads(void) {
    int (*get)(void) = (int (*)(void))openmp_symbol("omp_get_max_threads");
    return get ? get() : -1;
}
