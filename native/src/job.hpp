// The parts of job.json (runners/README.md) that the native runner reads, validated once on entry.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace sweep {

/// A problem with what the runner was given (arguments, job file, model file): exit code 2.
class BadInput : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct InputSpec {
  std::vector<int64_t> shape;
  double low = 0.0;
  double high = 1.0;
};

struct Artifact {
  std::string kind;  // torchscript | torchscript-trt | aoti
  std::string file;  // absolute path
};

struct Job {
  std::string job_key;
  std::string runtime;
  std::string device;           // cpu | cuda | cuda:N
  std::vector<InputSpec> inputs;
  std::string model_precision;  // fp32 | fp16 | bf16 | fp32+fp16 | fp32+bf16
  int64_t warmup = 0;
  int64_t iters = 0;
  int64_t seed = 0;
  Artifact artifact;
  std::optional<std::string> outputs_path;  // null: the fidelity outputs are not saved
  bool cuda_graphs = false;  // capture one forward into a CUDA graph after warm-up, replay it in the timed loop
  std::string tf32;          // "on" | "off" | "" (PyTorch's default: cuDNN TF32 on, cuBLAS TF32 off)
  // Read by the parent or the Python runners only, and ignored here: process, reference, fidelity,
  // profile_kernels (the parent computes C++ fidelity with `python -m runners.fidelity`).
};

/// The artifact kinds this binary runs (an unknown kind is bad input, with this list in the message).
const std::vector<std::string>& known_artifact_kinds();

/// Reads and validates job.json; throws BadInput naming the file and the offending key.
Job load_job(const std::string& path);

}  // namespace sweep
