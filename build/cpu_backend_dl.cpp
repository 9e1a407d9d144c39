// Added to stable-diffusion.cpp's sources by build/native_library.py (not part of upstream).
//
// With GGML_BACKEND_DL the CPU backend is a module that ggml loads at run time (one of several
// variants), so the ggml_cpu_* functions that stable-diffusion.cpp 0.4.7 calls directly
// (sd_get_system_info, a fallback in sd_get_default_backend) are linked nowhere, and the library
// would not even load. These definitions answer for whichever CPU backend ggml loaded.
#include <cstdlib>
#include <cstring>

#include "ggml-backend.h"
#include "ggml-cpu.h"

static int cpu_feature(const char* name) {
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("CPU");
    if (reg == nullptr) {
        return 0;
    }
    auto get_features = (ggml_backend_get_features_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features");
    for (auto* feature = get_features ? get_features(reg) : nullptr; feature && feature->name; feature++) {
        if (std::strcmp(feature->name, name) == 0) {
            return std::atoi(feature->value) != 0;
        }
    }
    return 0;
}

extern "C" {
int ggml_cpu_has_sse3(void) { return cpu_feature("SSE3"); }
int ggml_cpu_has_avx(void) { return cpu_feature("AVX"); }
int ggml_cpu_has_avx2(void) { return cpu_feature("AVX2"); }
int ggml_cpu_has_avx512(void) { return cpu_feature("AVX512"); }
int ggml_cpu_has_avx512_vbmi(void) { return cpu_feature("AVX512_VBMI"); }
int ggml_cpu_has_avx512_vnni(void) { return cpu_feature("AVX512_VNNI"); }
int ggml_cpu_has_fma(void) { return cpu_feature("FMA"); }
int ggml_cpu_has_f16c(void) { return cpu_feature("F16C"); }
int ggml_cpu_has_neon(void) { return cpu_feature("NEON"); }
int ggml_cpu_has_arm_fma(void) { return cpu_feature("ARM_FMA"); }
int ggml_cpu_has_fp16_va(void) { return cpu_feature("FP16_VA"); }
int ggml_cpu_has_wasm_simd(void) { return cpu_feature("WASM_SIMD"); }
int ggml_cpu_has_vsx(void) { return cpu_feature("VSX"); }
ggml_backend_t ggml_backend_cpu_init(void) { return ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr); }
}
