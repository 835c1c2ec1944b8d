// The fidelity outputs: a model's result flattened to a list of CPU tensors and saved in a file that
// Python's torch.load reads back as a plain list (runners/README.md, "Inputs").
#pragma once

#include <ATen/core/ivalue.h>
#include <ATen/core/Tensor.h>

#include <vector>

namespace sweep {

/// Depth-first leaves of `out` as detached CPU tensors, in the order of Python's pytree flattening:
/// tuples and lists element by element, dicts in insertion order, None dropped, Python scalars as
/// 0-dim tensors.
std::vector<at::Tensor> flatten_outputs(const c10::IValue& out);

/// The bytes of a torch.save-format zip holding a Python list of these tensors, loadable by
/// torch.load(path) with its default weights_only=True.
std::vector<char> save_tensor_list(const std::vector<at::Tensor>& tensors);

}  // namespace sweep
