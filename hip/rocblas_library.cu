// Run-time loading of rocBLAS (see rocblas_library.cuh for the search order).
#include "rocblas_library.cuh"

#include <dlfcn.h>

#include <string>
#include <type_traits>

namespace pagedllm {
namespace {

struct Loaded {
  RocblasLibrary lib;
  std::string error;  // empty when lib is complete
};

Loaded load() {
  Loaded r;
  const char* candidates[] = {PAGEDLLM_ROCBLAS_SONAME, "librocblas.so", PAGEDLLM_ROCBLAS_LIBRARY};
  void* handle = nullptr;
  std::string tried;
  for (const char* name : candidates) {
    if (name[0] == '\0') continue;
    handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
      r.lib.path = name;
      break;
    }
    const char* why = dlerror();
    tried += std::string("\n  ") + name + ": " + (why != nullptr ? why : "not found");
  }
  if (handle == nullptr) {
    r.error = "rocBLAS could not be loaded; tried:" + tried +
              "\ninstall ROCm's rocblas package or put its folder (e.g. /opt/rocm/lib) on LD_LIBRARY_PATH";
    return r;
  }
  std::string missing;
  auto get = [&](const char* symbol, auto* fn) {
    *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(dlsym(handle, symbol));
    if (*fn == nullptr) missing += std::string(missing.empty() ? "" : ", ") + symbol;
  };
  RocblasLibrary& l = r.lib;
  get("rocblas_create_handle", &l.create_handle);
  get("rocblas_destroy_handle", &l.destroy_handle);
  get("rocblas_set_stream", &l.set_stream);
  get("rocblas_set_workspace", &l.set_workspace);
  get("rocblas_status_to_string", &l.status_string);
  get("rocblas_gemm_ex", &l.gemm_ex);
  if (!missing.empty()) r.error = r.lib.path + " lacks " + missing;
  return r;
}

}  // namespace

const RocblasLibrary* load_rocblas(std::string* error) {
  static const Loaded loaded = load();
  if (!loaded.error.empty()) {
    if (error != nullptr) *error = loaded.error;
    return nullptr;
  }
  return &loaded.lib;
}

}  // namespace pagedllm
