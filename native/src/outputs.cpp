// Flattening and saving the fidelity outputs; see outputs.hpp.
#include "outputs.hpp"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include <stdexcept>
#include <string>

namespace sweep {

namespace {

void flatten_into(const c10::IValue& v, std::vector<at::Tensor>& out) {
  if (v.isTensor()) {
    // clone(): a compact CPU copy, so a view does not drag its whole base storage into the file.
    out.push_back(v.toTensor().detach().to(at::kCPU).clone());
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) flatten_into(e, out);
  } else if (v.isList()) {
    for (const c10::IValue& e : v.toListRef()) flatten_into(e, out);
  } else if (v.isGenericDict()) {
    for (const auto& kv : v.toGenericDict()) flatten_into(kv.value(), out);
  } else if (v.isNone()) {
    // pytree: None is a node without leaves
  } else if (v.isDouble()) {
    out.push_back(at::scalar_tensor(v.toDouble(), at::kDouble));
  } else if (v.isInt()) {
    out.push_back(at::scalar_tensor(v.toInt(), at::kLong));
  } else if (v.isBool()) {
    out.push_back(at::scalar_tensor(v.toBool(), at::kBool));
  } else {
    throw std::runtime_error("model output contains a " + v.tagKind() +
                             ", which sweep-bench cannot save as a tensor");
  }
}

}  // namespace

std::vector<at::Tensor> flatten_outputs(const c10::IValue& out) {
  std::vector<at::Tensor> leaves;
  flatten_into(out, leaves);
  return leaves;
}

std::vector<char> save_tensor_list(const std::vector<at::Tensor>& tensors) {
  // This is torch::pickle_save with one change: tag_aggregates = false. pickle_save tags lists with
  // their TorchScript type (torch.jit._pickle.build_tensorlist / restore_type_tag), globals that
  // torch.load's default weights_only=True unpickler refuses; untagged, the list is a plain Python
  // list whose tensors rebuild through torch._utils._rebuild_tensor_v2, which it allows.
  c10::impl::GenericList list(c10::AnyType::get());
  for (const at::Tensor& t : tensors) list.push_back(t);

  std::vector<char> pickled;
  torch::jit::Pickler pickler(
      [&](const char* buf, size_t size) { pickled.insert(pickled.end(), buf, buf + size); },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(c10::IValue(list));
  pickler.stop();

  std::vector<char> zip;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) {
    const char* bytes = static_cast<const char*>(data);
    zip.insert(zip.end(), bytes, bytes + size);
    return size;
  });
  // data.pkl plus data/0, data/1, ... for the tensors' storages: the layout torch.save writes.
  torch::jit::writeArchiveAndTensors("data", pickled.data(), pickled.size(), pickler.tensorData(), writer);
  writer.writeEndOfFile();
  return zip;
}

}  // namespace sweep
