// libFuzzer's driver, defined in libclang_rt.fuzzer, linked by `-sanitize=fuzzer`.
// SwiftPM links an executable target's main under its own name on Linux, so libFuzzer's
// own `main` cannot be used; each fuzz target's main.swift calls the driver instead.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
