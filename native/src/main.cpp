// sweep-bench: the native runner of the runner contract (runners/README.md).
//
//   sweep-bench --job job.json --out result.json
//   sweep-bench --version
//
// Exit 0 whenever result.json was written (ok, unavailable, unsupported); bad input (arguments, job file,
// model file, artifact kind, a model that rejects its inputs) prints one line on stderr prefixed
// "sweep-bench: " and exits 2 without writing result.json.
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/utils.h>
#include <torch/version.h>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "energy.hpp"
#include "graph.hpp"
#include "job.hpp"
#include "json.hpp"
#include "model.hpp"
#include "outputs.hpp"
#include "platform.hpp"
#include "trt.hpp"

#ifndef SWEEP_BENCH_VERSION
#define SWEEP_BENCH_VERSION "0.0.0"
#endif

namespace sweep {
namespace {

constexpr const char* kUsage =
    "usage: sweep-bench --job job.json --out result.json\n"
    "       sweep-bench --version\n"
    "Runs one job of the sweep runner contract (see runners/README.md).\n";

struct Args {
  std::string job;
  std::string out;
  bool version = false;
  bool help = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&](const std::string& name) -> std::string {
      if (arg.size() > name.size() && arg.compare(0, name.size() + 1, name + "=") == 0) {
        return arg.substr(name.size() + 1);
      }
      if (i + 1 >= argc) throw BadInput(name + " needs a value");
      return argv[++i];
    };
    if (arg == "--version" || arg == "-V") {
      a.version = true;
    } else if (arg == "--help" || arg == "-h") {
      a.help = true;
    } else if (arg == "--job" || arg.rfind("--job=", 0) == 0) {
      a.job = value("--job");
    } else if (arg == "--out" || arg.rfind("--out=", 0) == 0) {
      a.out = value("--out");
    } else {
      throw BadInput("unknown argument \"" + arg + "\" (usage: sweep-bench --job job.json --out result.json)");
    }
  }
  if (!a.version && !a.help && (a.job.empty() || a.out.empty())) {
    throw BadInput("--job and --out are required (usage: sweep-bench --job job.json --out result.json)");
  }
  return a;
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees half a file.
void write_file_atomic(const std::string& path, const char* data, size_t size) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    out.write(data, static_cast<std::streamsize>(size));
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw std::runtime_error("cannot rename " + tmp + " to " + path);
  }
}

at::ScalarType input_dtype(const std::string& model_precision) {
  // fp16 / bf16: the artifact was built for that dtype, so inputs are cast too; mixed precisions
  // (fp32+fp16, fp32+bf16) keep fp32 inputs.
  if (model_precision == "fp16") return at::kHalf;
  if (model_precision == "bf16") return at::kBFloat16;
  return at::kFloat;
}

/// The contract's inputs: input i is drawn on the CPU generator seeded with seed + i, exactly as the
/// Python runners draw it, then cast and moved to the device.
std::vector<at::Tensor> make_inputs(const Job& job, const c10::Device& device) {
  std::vector<at::Tensor> inputs;
  const at::ScalarType dtype = input_dtype(job.model_precision);
  for (size_t i = 0; i < job.inputs.size(); ++i) {
    const InputSpec& spec = job.inputs[i];
    torch::manual_seed(static_cast<uint64_t>(job.seed + static_cast<int64_t>(i)));
    at::Tensor x = spec.low + (spec.high - spec.low) * torch::rand(spec.shape, torch::kFloat32);
    inputs.push_back(x.to(dtype).to(device));
  }
  return inputs;
}

template <typename T>
Json optional_value(const std::optional<T>& v) {
  return v ? Json(*v) : Json(nullptr);
}

Json env_json(const std::optional<c10::Device>& device) {
  Json env = Json::object();
  env["torch_version"] = TORCH_VERSION;
  env["device_name"] = device ? Json(platform::device_name(*device)) : Json(nullptr);
  env["cuda_version"] = optional_value(platform::cuda_runtime_version());
  env["driver_version"] = nullptr;  // the NVIDIA driver version comes from NVML in the parent
  env["torch_tensorrt_version"] = nullptr;
  env["tensorrt_version"] = optional_value(trt::tensorrt_version());
  return env;
}

Json extra_json(const Job& job) {
  const trt::Runtime& rt = trt::load_runtime();
  Json extra = Json::object();
  extra["binary"] = "sweep-bench";
  extra["binary_version"] = SWEEP_BENCH_VERSION;
  extra["libtorch"] = TORCH_VERSION;
  extra["built_with_cuda"] = platform::built_with_cuda();
  extra["artifact_kind"] = job.artifact.kind;
  extra["torchtrt_runtime"] = rt.loaded ? Json(rt.path) : Json(nullptr);
  extra["intra_op_threads"] = static_cast<int64_t>(at::get_num_threads());
  return extra;
}

/// The job's tf32 ("on" / "off"; "" keeps PyTorch's defaults: cuDNN TF32 on, cuBLAS TF32 off unless
/// TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1), set before the model is loaded so that every call sees it.
void apply_tf32(const std::string& tf32) {
  if (tf32.empty()) return;
  const bool on = tf32 == "on";
  at::globalContext().setAllowTF32CuBLAS(on);
  at::globalContext().setAllowTF32CuDNN(on);
}

constexpr const char* kNoProfile = "kernel-busy time is not measured by the C++ runner";
constexpr const char* kNoLoop = "no timed loop ran";

/// The result.json skeleton shared by every status (runners/README.md), with what the run was set up with.
Json result_json(const std::string& status, const std::string& reason, const Job& job) {
  const bool cuda = c10::Device(job.device).is_cuda();  // parse_device() has accepted it by now
  Json r = Json::object();
  r["status"] = status;
  r["reason"] = reason;
  r["samples_ms"] = Json::array();
  r["samples_cuda_ms"] = Json::array();
  r["peak_mem_mb"] = nullptr;
  r["reserved_mem_mb"] = nullptr;
  // nvml_mem_mb stays null and telemetry empty in C++ rows: NVML telemetry is sampled only by the Python
  // runners, and the parent (sweep/orchestrate.py) fills in neither.
  r["nvml_mem_mb"] = nullptr;
  r["load_s"] = nullptr;
  r["compile_s"] = nullptr;
  r["outputs_path"] = nullptr;
  r["env"] = nullptr;
  r["telemetry"] = Json::object();
  r["extra"] = Json::object();
  // The run's settings. cuda_graphs is the job's: a graph that cannot be captured makes the job
  // unsupported, it is never run without one.
  r["cuda_graphs"] = job.cuda_graphs;
  // As the Python runners report them: both false on the CPU, where TF32 does not exist.
  r["tf32_matmul"] = cuda && at::globalContext().allowTF32CuBLAS();
  r["tf32_cudnn"] = cuda && at::globalContext().allowTF32CuDNN();
  r["num_threads"] = static_cast<int64_t>(at::get_num_threads());
  r["kernel_busy_ms"] = nullptr;
  r["kernels_per_forward"] = nullptr;
  r["profile_note"] = kNoProfile;
  r["energy_mj_per_forward"] = nullptr;
  r["mean_power_w"] = nullptr;
  r["energy_note"] = kNoLoop;
  // The parent judges C++ outputs itself (`python -m runners.fidelity` on outputs_path).
  r["fidelity"] = nullptr;
  return r;
}

void write_result(const std::string& out, const Json& result) {
  const std::string text = dump(result);
  write_file_atomic(out, text.data(), text.size());
}

/// A result without measurements (unavailable / unsupported): written, and the exit code is 0.
int write_status(const Args& args, const Job& job, const std::optional<c10::Device>& device,
                 const std::string& status, const std::string& reason) {
  Json r = result_json(status, reason, job);
  r["env"] = env_json(device);
  r["extra"] = extra_json(job);
  write_result(args.out, r);
  std::cerr << "sweep-bench: " << status << ": " << reason << "\n";
  return 0;
}

/// What the binary was built with, on one line, for `sweep doctor`.
int print_version() {
  const trt::Runtime& rt = trt::load_runtime();
  const std::string cuda = platform::built_with_cuda() ? platform::cuda_build_version() : "no";
  std::cout << "sweep-bench " << SWEEP_BENCH_VERSION << " libtorch=" << TORCH_VERSION << " cuda=" << cuda
            << " torchtrt=" << (rt.loaded ? "loaded" : (rt.path.empty() ? "unset" : "error")) << "\n";
  return 0;
}

std::string one_line(const std::string& msg);

std::string stage = "starting";  // what the binary was doing, for the one-line error message

int run(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  if (args.help) {
    std::cout << kUsage;
    return 0;
  }
  if (args.version) return print_version();

  // AOTInductor models skip their input shape/dtype checks unless this is set; without them a job
  // whose shapes do not match the package reads out of bounds instead of failing cleanly. The cost
  // is a few integer comparisons per call.
  ::setenv("AOTI_RUNTIME_CHECK_INPUTS", "1", /*overwrite=*/0);

  stage = "loading the Torch-TensorRT runtime";
  const trt::Runtime& rt = trt::load_runtime();  // before any model is loaded
  stage = "reading " + args.job;
  const Job job = load_job(args.job);
  if (!rt.loaded && !rt.path.empty() && job.artifact.kind != "torchscript-trt") {
    std::cerr << "sweep-bench: warning: " << trt::unavailable_reason(rt) << "\n";
  }

  const c10::Device device = platform::parse_device(job.device);
  if (!job.tf32.empty() && !device.is_cuda()) {
    throw BadInput(args.job + ": \"tf32\": \"" + job.tf32 + "\" applies to CUDA devices only, the job runs on " +
                   job.device + " (allowed there: \"\")");
  }
  apply_tf32(job.tf32);  // before anything else, so that every result (unsupported ones too) reports it
  const std::optional<std::string> device_missing = platform::unavailable_reason(device);
  const auto usable_device = device_missing ? std::nullopt : std::optional<c10::Device>(device);
  if (job.artifact.kind == "torchscript-trt" && !rt.loaded) {
    return write_status(args, job, usable_device, "unavailable", trt::unavailable_reason(rt));
  }
  if (device_missing) return write_status(args, job, std::nullopt, "unavailable", *device_missing);
  if (job.artifact.kind == "torchscript-trt" && !device.is_cuda()) {
    return write_status(args, job, device, "unsupported",
                        "TensorRT engines run on CUDA devices only (job device: " + job.device + ")");
  }
  if (job.cuda_graphs && !device.is_cuda()) {
    return write_status(args, job, device, "unsupported",
                        "CUDA graphs need a CUDA device (job device: " + job.device + ")");
  }
  platform::select_device(device);

  // Inference only: no autograd bookkeeping in the timed calls (as torch.inference_mode in Python).
  torch::NoGradGuard no_grad;
  c10::InferenceMode inference_mode;

  stage = "drawing the inputs";
  const std::vector<at::Tensor> inputs = make_inputs(job, device);

  stage = "loading " + job.artifact.file;
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Model> model = load_model(job.artifact, device, /*for_capture=*/job.cuda_graphs);
  platform::synchronize(device);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Warm-up: first-call work (lazy initialisation, autotuning, allocator growth) stays out of samples.
  // With CUDA graphs, the warm-up runs on the capture's side stream and one forward is captured there.
  std::unique_ptr<GraphedForward> graph;
  stage = "running the model (warm-up)";
  if (job.cuda_graphs) {
    try {
      graph = std::make_unique<GraphedForward>(*model, inputs, device, job.warmup);
    } catch (const CaptureError& e) {
      write_status(args, job, device, "unsupported", "CUDA graph capture failed: " + one_line(e.what()));
      // result.json is complete on disk. Leave without unwinding: the graph, its memory pool and the model
      // after a failed capture are nothing an exit-time destructor should touch (a crash there would turn
      // this row into `failed`).
      std::cout.flush();
      std::cerr.flush();
      std::_Exit(0);
    }
  } else {
    for (int64_t i = 0; i < job.warmup; ++i) (void)model->forward(inputs);
  }
  platform::synchronize(device);

  stage = "running the model (timed loop)";
  platform::reset_peak_memory(device);
  Json samples_ms = Json::array(), samples_cuda_ms = Json::array();
  energy::Counter counter(device);
  std::optional<unsigned long long> energy_before, energy_after;
  double loop_ms = 0.0;
  {
    platform::IterationTimer timer(device);
    energy_before = counter.read();
    const auto loop_start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < job.iters; ++i) {
      timer.start();
      if (graph) {
        graph->replay();
      } else {
        c10::IValue out = model->forward(inputs);
      }
      samples_ms.push_back(timer.stop());
      if (auto cuda_ms = timer.last_device_ms()) samples_cuda_ms.push_back(*cuda_ms);
    }
    loop_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - loop_start).count();
    energy_after = counter.read();
  }
  const platform::Memory memory = platform::peak_memory(device);
  const energy::Reading energy = energy::reading(energy_before, energy_after, counter.note(), job.iters, loop_ms);

  // Fidelity: one more call on the same inputs (a replay, with graphs); the parent compares these with an
  // fp32 reference.
  Json outputs_path(nullptr);
  if (job.outputs_path) {
    stage = "running the model (fidelity outputs)";
    c10::IValue out;
    if (graph) {
      graph->replay();
      out = graph->outputs();
    } else {
      out = model->forward(inputs);
    }
    platform::synchronize(device);
    stage = "saving the outputs to " + *job.outputs_path;
    const std::vector<char> bytes = save_tensor_list(flatten_outputs(out));
    write_file_atomic(*job.outputs_path, bytes.data(), bytes.size());
    outputs_path = *job.outputs_path;
  }

  stage = "writing " + args.out;
  Json r = result_json("ok", "", job);
  r["samples_ms"] = std::move(samples_ms);
  r["samples_cuda_ms"] = std::move(samples_cuda_ms);
  r["peak_mem_mb"] = optional_value(memory.peak_mb);
  r["reserved_mem_mb"] = optional_value(memory.reserved_mb);
  r["load_s"] = load_s;
  r["outputs_path"] = outputs_path;
  r["env"] = env_json(device);
  r["extra"] = extra_json(job);
  r["energy_mj_per_forward"] = optional_value(energy.mj_per_forward);
  r["mean_power_w"] = optional_value(energy.mean_power_w);
  r["energy_note"] = energy.note;
  write_result(args.out, r);
  return 0;
}

/// Folds a (possibly multi-line TorchScript) error into one line, keeping its root cause.
std::string one_line(const std::string& msg) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= msg.size()) {
    size_t end = msg.find('\n', start);
    if (end == std::string::npos) end = msg.size();
    std::string line = msg.substr(start, end - start);
    const auto b = line.find_first_not_of(" \t\r");
    if (b != std::string::npos) lines.push_back(line.substr(b, line.find_last_not_of(" \t\r") - b + 1));
    start = end + 1;
  }
  std::string result;
  // TorchScript interpreter errors end with the Python-style "SomethingError: what went wrong".
  for (auto it = lines.rbegin(); it != lines.rend() && result.empty(); ++it) {
    const auto colon = it->find("Error: ");
    if (colon != std::string::npos && it->find(' ') > colon) result = *it;
  }
  if (result.empty()) {
    for (const auto& l : lines) result += (result.empty() ? "" : " | ") + l;
  }
  if (result.empty()) result = "unknown error";
  constexpr size_t kMax = 2000;
  if (result.size() > kMax) result = result.substr(0, kMax) + " ...";
  return result;
}

int fail(const std::string& context, const std::string& msg) {
  std::cerr << "sweep-bench: " << context << one_line(msg) << std::endl;
  return 2;
}

}  // namespace
}  // namespace sweep

int main(int argc, char** argv) {
  using sweep::fail;
  using sweep::stage;
  try {
    return sweep::run(argc, argv);
  } catch (const sweep::BadInput& e) {
    return fail("", e.what());
  } catch (const c10::Error& e) {
    return fail(stage + ": ", e.what_without_backtrace());
  } catch (const std::exception& e) {
    return fail(stage + ": ", e.what());
  } catch (...) {
    return fail(stage + ": ", "unknown exception");
  }
}
