// CPU / CUDA specifics of the native runner; see platform.hpp.
#include "platform.hpp"

#include <sys/resource.h>
#include <sys/utsname.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include <torch/cuda.h>

#include "job.hpp"

#ifdef SWEEP_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace sweep::platform {

namespace {

long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

/// The first /proc/cpuinfo value among `keys` (x86 says "model name"; Arm kernels vary).
std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  for (const char* key : {"model name", "Model", "Hardware", "cpu model", "Processor"}) {
    in.clear();
    in.seekg(0);
    while (std::getline(in, line)) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      if (trim(line.substr(0, colon)) == key) {
        const std::string value = trim(line.substr(colon + 1));
        if (!value.empty()) return value;
      }
    }
  }
  struct utsname u {};
  if (uname(&u) == 0) return std::string("cpu (") + u.machine + ")";
  return "cpu";
}

#ifdef SWEEP_WITH_CUDA
void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string(what) + " failed: " + cudaGetErrorString(err));
  }
}

std::string format_cuda_version(int v) {  // 13000 -> "13.0"
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}
#endif

}  // namespace

bool built_with_cuda() {
#ifdef SWEEP_WITH_CUDA
  return true;
#else
  return false;
#endif
}

std::string cuda_build_version() {
#ifdef SWEEP_WITH_CUDA
  return format_cuda_version(CUDART_VERSION);
#else
  return "";
#endif
}

c10::Device parse_device(const std::string& spec) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(spec);
  } catch (const c10::Error&) {
    throw BadInput("unknown device \"" + spec + "\" (allowed: cpu, cuda, cuda:N)");
  }
  if (!device.is_cpu() && !device.is_cuda()) {
    throw BadInput("unsupported device \"" + spec + "\" (allowed: cpu, cuda, cuda:N)");
  }
  if (device.is_cpu()) return c10::Device(c10::kCPU);  // "cpu:0" and "cpu" mean the same
#ifdef SWEEP_WITH_CUDA
  if (!device.has_index() && torch::cuda::is_available()) {
    return c10::Device(c10::kCUDA, c10::cuda::current_device());
  }
#endif
  return device;
}

std::optional<std::string> unavailable_reason(const c10::Device& device) {
  if (device.is_cpu()) return std::nullopt;
  if (!built_with_cuda()) {
    return "sweep-bench was built against a CPU-only libtorch: rebuild it (make native) with a CUDA "
           "build of torch to run on " + device.str();
  }
  if (!torch::cuda::is_available()) return std::string("no CUDA device is visible to libtorch");
  const auto count = torch::cuda::device_count();
  if (device.has_index() && device.index() >= count) {
    return device.str() + " does not exist: " + std::to_string(count) + " CUDA device(s) visible";
  }
  return std::nullopt;
}

void select_device(const c10::Device& device) {
#ifdef SWEEP_WITH_CUDA
  if (device.is_cuda() && device.has_index()) c10::cuda::set_device(device.index());
#else
  (void)device;
#endif
}

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
}

void reset_peak_memory(const c10::Device& device) {
#ifdef SWEEP_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#else
  (void)device;
#endif
}

Memory peak_memory(const c10::Device& device) {
  Memory m;
#ifdef SWEEP_WITH_CUDA
  if (device.is_cuda()) {
    constexpr double kMiB = 1024.0 * 1024.0;
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    const size_t aggregate = 0;  // StatType::AGGREGATE: all pools together
    m.peak_mb = static_cast<double>(stats.allocated_bytes[aggregate].peak) / kMiB;
    m.reserved_mb = static_cast<double>(stats.reserved_bytes[aggregate].peak) / kMiB;
    return m;
  }
#else
  (void)device;
#endif
  struct rusage usage {};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    m.peak_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
  }
  return m;
}

std::string device_name(const c10::Device& device) {
#ifdef SWEEP_WITH_CUDA
  if (device.is_cuda()) {
    cudaDeviceProp prop{};
    check_cuda(cudaGetDeviceProperties(&prop, device.index()), "cudaGetDeviceProperties");
    return prop.name;
  }
#else
  (void)device;
#endif
  return cpu_model_name();
}

std::optional<std::string> pci_bus_id(const c10::Device& device) {
#ifdef SWEEP_WITH_CUDA
  if (device.is_cuda()) {
    char id[32] = {};  // "dddd:bb:dd.f" plus room for a longer domain
    if (cudaDeviceGetPCIBusId(id, sizeof id, device.has_index() ? device.index() : 0) == cudaSuccess) {
      return std::string(id);
    }
  }
#else
  (void)device;
#endif
  return std::nullopt;
}

std::optional<std::string> cuda_runtime_version() {
#ifdef SWEEP_WITH_CUDA
  int v = 0;  // needs no device: the version of the libcudart that libtorch loaded
  if (cudaRuntimeGetVersion(&v) == cudaSuccess && v > 0) return format_cuda_version(v);
#endif
  return std::nullopt;
}

IterationTimer::IterationTimer(const c10::Device& device) : device_(device) {
#ifdef SWEEP_WITH_CUDA
  if (device_.is_cuda()) {
    cudaEvent_t a = nullptr, b = nullptr;
    check_cuda(cudaEventCreate(&a), "cudaEventCreate");
    check_cuda(cudaEventCreate(&b), "cudaEventCreate");
    start_event_ = a;
    end_event_ = b;
  }
#endif
}

IterationTimer::~IterationTimer() {
#ifdef SWEEP_WITH_CUDA
  if (start_event_) cudaEventDestroy(static_cast<cudaEvent_t>(start_event_));
  if (end_event_) cudaEventDestroy(static_cast<cudaEvent_t>(end_event_));
#endif
}

void IterationTimer::start() {
  host_start_ns_ = now_ns();
#ifdef SWEEP_WITH_CUDA
  if (start_event_) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
    check_cuda(cudaEventRecord(static_cast<cudaEvent_t>(start_event_), stream), "cudaEventRecord");
  }
#endif
}

double IterationTimer::stop() {
#ifdef SWEEP_WITH_CUDA
  if (end_event_) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
    check_cuda(cudaEventRecord(static_cast<cudaEvent_t>(end_event_), stream), "cudaEventRecord");
  }
#endif
  synchronize(device_);
  const double host_ms = static_cast<double>(now_ns() - host_start_ns_) / 1e6;
#ifdef SWEEP_WITH_CUDA
  if (start_event_) {
    float ms = 0.0f;
    check_cuda(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start_event_),
                                    static_cast<cudaEvent_t>(end_event_)),
               "cudaEventElapsedTime");
    // The float's shortest decimal (0.399872, not 0.3998720049858093) as a double.
    char buf[32];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, ms);
    device_ms_ = ec == std::errc() ? std::strtod(std::string(buf, end).c_str(), nullptr)
                                   : static_cast<double>(ms);
  }
#endif
  return host_ms;
}

}  // namespace sweep::platform
