// Run-time loading of cuBLAS (see cublas_library.cuh for the search order).
#include "cublas_library.cuh"

#include <dlfcn.h>

#include <type_traits>
#include <vector>

#ifndef PAGEDLLM_CUBLAS_WHEEL_LIB_DIR
#define PAGEDLLM_CUBLAS_WHEEL_LIB_DIR "nvidia/cu13/lib"
#endif
#define PAGEDLLM_STRINGIFY_(x) #x
#define PAGEDLLM_STRINGIFY(x) PAGEDLLM_STRINGIFY_(x)

namespace pagedllm {
namespace {

using GemmExFn = decltype(CublasLibrary::gemm_ex);
static_assert(std::is_same<decltype(static_cast<GemmExFn>(&cublasGemmEx)), GemmExFn>::value,
              "CublasLibrary::gemm_ex must match cublasGemmEx in cublas_api.h");

constexpr const char* kSoname = "libcublas.so." PAGEDLLM_STRINGIFY(CUBLAS_VER_MAJOR);

// The folder of the shared object (or executable) that contains this function.
std::string own_folder() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&own_folder), &info) == 0 || info.dli_fname == nullptr) return "";
  std::string path = info.dli_fname;
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

template <typename Fn>
bool resolve(void* handle, const char* symbol, Fn* out, std::string* missing) {
  *out = reinterpret_cast<Fn>(dlsym(handle, symbol));
  if (*out == nullptr) *missing += std::string(missing->empty() ? "" : ", ") + symbol;
  return *out != nullptr;
}

struct Loaded {
  CublasLibrary lib;
  std::string error;
  bool ok = false;
};

Loaded load() {
  Loaded r;
  std::string tried;
  std::vector<std::string> candidates = {kSoname};
  const std::string folder = own_folder();
  if (!folder.empty()) candidates.push_back(folder + "/../" PAGEDLLM_CUBLAS_WHEEL_LIB_DIR "/" + kSoname);
  void* handle = nullptr;
  for (const std::string& name : candidates) {
    handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
      r.lib.path = name;
      break;
    }
    const char* why = dlerror();
    tried += "\n  " + (why ? std::string(why) : name + ": not found");
  }
  if (handle == nullptr) {
    r.error = std::string("cuBLAS (") + kSoname + ") could not be loaded; tried:" + tried +
              "\ninstall it with `pip install nvidia-cublas` (or a CUDA toolkit with cuBLAS) in the same "
              "environment as pagedllm, or put its folder on LD_LIBRARY_PATH";
    return r;
  }
  std::string missing;
  CublasLibrary& l = r.lib;
  resolve(handle, "cublasCreate_v2", &l.create, &missing);
  resolve(handle, "cublasDestroy_v2", &l.destroy, &missing);
  resolve(handle, "cublasSetStream_v2", &l.set_stream, &missing);
  resolve(handle, "cublasSetWorkspace_v2", &l.set_workspace, &missing);
  resolve(handle, "cublasSetMathMode", &l.set_math_mode, &missing);
  resolve(handle, "cublasGetStatusString", &l.status_string, &missing);
  resolve(handle, "cublasGemmEx", &l.gemm_ex, &missing);
  if (!missing.empty()) {
    r.error = r.lib.path + " lacks " + missing + " (pagedllm needs cuBLAS " PAGEDLLM_STRINGIFY(CUBLAS_VER_MAJOR) ".x)";
    return r;
  }
  r.ok = true;
  return r;
}

}  // namespace

const CublasLibrary* load_cublas(std::string* error) {
  static const Loaded loaded = load();
  if (!loaded.ok) {
    if (error != nullptr) *error = loaded.error;
    return nullptr;
  }
  return &loaded.lib;
}

}  // namespace pagedllm
