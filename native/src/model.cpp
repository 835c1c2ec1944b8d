// Artifact loading; see model.hpp.
#include "model.hpp"

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>

#include <filesystem>
#include <memory>
#include <system_error>

namespace sweep {

namespace {

class TorchScriptModel final : public Model {
 public:
  TorchScriptModel(const std::string& file, const c10::Device& device)
      : module_(torch::jit::load(file, device)) {
    module_.eval();
  }

  c10::IValue forward(const std::vector<at::Tensor>& inputs) override {
    std::vector<c10::IValue> args(inputs.begin(), inputs.end());
    return module_.forward(std::move(args));
  }

 private:
  torch::jit::Module module_;
};

class AotiModel final : public Model {
 public:
  AotiModel(const std::string& file, const c10::Device& device, bool run_single_threaded)
      : loader_(file, "model", run_single_threaded, /*num_runners=*/1,
                device.is_cuda() && device.has_index() ? device.index() : c10::DeviceIndex(-1)) {}

  c10::IValue forward(const std::vector<at::Tensor>& inputs) override {
    // The package already returns its outputs flattened in pytree order (its out_spec).
    std::vector<at::Tensor> outs = loader_.run(inputs);
    c10::List<at::Tensor> list;
    list.reserve(outs.size());
    for (auto& t : outs) list.push_back(std::move(t));
    return c10::IValue(std::move(list));
  }

 private:
  torch::inductor::AOTIModelPackageLoader loader_;
};

}  // namespace

std::unique_ptr<Model> load_model(const Artifact& artifact, const c10::Device& device, bool for_capture) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(artifact.file, ec)) {
    throw BadInput("model file not found: " + artifact.file);
  }
  if (artifact.kind == "torchscript" || artifact.kind == "torchscript-trt") {
    return std::make_unique<TorchScriptModel>(artifact.file, device);
  }
  if (artifact.kind == "aoti") return std::make_unique<AotiModel>(artifact.file, device, for_capture);
  throw BadInput("unknown artifact kind \"" + artifact.kind + "\"");
}

}  // namespace sweep
