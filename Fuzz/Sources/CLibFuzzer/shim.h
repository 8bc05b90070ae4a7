// libFuzzer's driver entry point (compiler-rt, LLVM 11 and later). Declaration only: the
// definition comes from the runtime that `-sanitize=fuzzer` links in.
#pragma once
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv,
                        int (*callback)(const uint8_t *data, size_t size));
