// Optional Torch-TensorRT runtime: loaded at start so TorchScript modules with TensorRT engines load.
#pragma once

#include <optional>
#include <string>

namespace sweep::trt {

struct Runtime {
  bool loaded = false;
  std::string path;   // what SWEEP_TORCHTRT_RUNTIME named ("" when unset)
  std::string error;  // why it is not loaded (unset variable or the dlopen error)
};

/// dlopen()s $SWEEP_TORCHTRT_RUNTIME with RTLD_NOW | RTLD_GLOBAL, once; the engine's TorchScript
/// class registers itself while the library loads, which is all torch::jit::load needs.
const Runtime& load_runtime();

/// The reason a torchscript-trt job is unavailable when the runtime is not loaded.
std::string unavailable_reason(const Runtime& rt);

/// TensorRT's version ("10.8.0") when libnvinfer was loaded along with the runtime, else nullopt.
std::optional<std::string> tensorrt_version();

}  // namespace sweep::trt
