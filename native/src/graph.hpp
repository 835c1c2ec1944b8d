// CUDA graphs: one forward captured after warm-up (static inputs and outputs), replayed in the timed loop.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "model.hpp"

namespace sweep {

/// The forward could not be captured (a host sync, a CPU op, an allocation the graph cannot hold, ...):
/// the job is `unsupported`, with this message as its reason. It is never run without the graph instead.
class CaptureError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class GraphedForward {
 public:
  /// Runs max(warmup, 1) warm-up forwards on a side stream (lazy initialisation, cuBLAS workspaces and
  /// autotuning happen there, outside the capture), then captures one forward of `inputs` on it with
  /// at::cuda::CUDAGraph. The inputs must stay alive and unchanged: the graph reads their memory.
  /// Errors of the warm-up calls propagate unchanged (the model failed, not the capture); errors of the
  /// capture become CaptureError. A CPU build throws CaptureError.
  GraphedForward(Model& model, const std::vector<at::Tensor>& inputs, const c10::Device& device, int64_t warmup);
  ~GraphedForward();
  GraphedForward(const GraphedForward&) = delete;
  GraphedForward& operator=(const GraphedForward&) = delete;

  /// Launches the graph on the current stream (asynchronously, like a forward call).
  void replay();
  /// The captured forward's outputs: static tensors that each replay overwrites.
  const c10::IValue& outputs() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sweep
