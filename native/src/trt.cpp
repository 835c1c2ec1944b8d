// Loading libtorchtrt_runtime.so at run time (see trt.hpp), so the binary needs no TensorRT to build.
#include "trt.hpp"

#include <dlfcn.h>

#include <cstdlib>

namespace sweep::trt {

const Runtime& load_runtime() {
  static const Runtime rt = [] {
    Runtime r;
    const char* env = std::getenv("SWEEP_TORCHTRT_RUNTIME");
    if (env == nullptr || *env == '\0') {
      r.error = "SWEEP_TORCHTRT_RUNTIME is not set";
      return r;
    }
    r.path = env;
    // Never dlclose()d: the registered TorchScript classes must outlive every module.
    if (dlopen(env, RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      const char* err = dlerror();
      r.error = err != nullptr ? err : "dlopen failed";
      return r;
    }
    r.loaded = true;
    return r;
  }();
  return rt;
}

std::string unavailable_reason(const Runtime& rt) {
  const std::string hint = "install the torch-tensorrt release that matches this torch (`sweep doctor` names it)";
  if (rt.path.empty()) return "libtorchtrt_runtime.so not found: " + hint;
  return "libtorchtrt_runtime.so could not be loaded (" + rt.error + "): " + hint;
}

std::optional<std::string> tensorrt_version() {
  // getInferLibVersion() is libnvinfer's C entry point; look it up only in what is already loaded.
  using VersionFn = int (*)();
  void* sym = dlsym(RTLD_DEFAULT, "getInferLibVersion");
  if (sym == nullptr) return std::nullopt;
  const int v = reinterpret_cast<VersionFn>(sym)();
  if (v <= 0) return std::nullopt;
  // TensorRT >= 10 encodes major*10000 + minor*100 + patch; 8.x used major*1000 + minor*100 + patch.
  const int major = v >= 100000 ? v / 10000 : v / 1000;
  const int minor = v >= 100000 ? (v / 100) % 100 : (v / 100) % 10;
  const int patch = v % 100;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace sweep::trt
