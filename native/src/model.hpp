// Loading an artifact (TorchScript, TorchScript with TensorRT engines, AOTInductor package) behind one
// call interface.
#pragma once

#include <ATen/core/ivalue.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <vector>

#include "job.hpp"

namespace sweep {

class Model {
 public:
  virtual ~Model() = default;
  /// One inference call; the caller holds the no-grad / inference-mode guards.
  virtual c10::IValue forward(const std::vector<at::Tensor>& inputs) = 0;
};

/// Loads the artifact onto `device`; throws BadInput when the file is missing, c10::Error when it is
/// not a valid artifact of that kind. `for_capture`: the model will be captured into a CUDA graph, so an
/// AOTInductor package runs single-threaded (no runner pool whose locking and events a capture cannot hold).
std::unique_ptr<Model> load_model(const Artifact& artifact, const c10::Device& device, bool for_capture = false);

}  // namespace sweep
