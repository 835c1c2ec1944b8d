// What differs between a CPU and a CUDA build: devices, synchronisation, timing, memory, names.
//
// CUDA code lives only in platform.cpp behind SWEEP_WITH_CUDA, which CMake defines when the found
// libtorch was built with CUDA; the rest of the binary is the same for both builds.
#pragma once

#include <c10/core/Device.h>

#include <optional>
#include <string>

namespace sweep::platform {

/// True when this binary was compiled against a CUDA libtorch.
bool built_with_cuda();

/// The CUDA version this binary was compiled with ("13.0"), or "" for a CPU build.
std::string cuda_build_version();

/// Parses "cpu" / "cuda" / "cuda:N" (bare "cuda" becomes the current device); throws BadInput otherwise.
c10::Device parse_device(const std::string& spec);

/// Why the device cannot be used by this binary on this machine, or nullopt when it can.
std::optional<std::string> unavailable_reason(const c10::Device& device);

/// Makes `device` the current CUDA device for the rest of the process (no-op on CPU).
void select_device(const c10::Device& device);

/// Waits for all queued work on the device; the host clock only means something after it.
void synchronize(const c10::Device& device);

/// Clears the peak statistics that peak_memory() reports (CUDA allocator; nothing on CPU).
void reset_peak_memory(const c10::Device& device);

struct Memory {
  std::optional<double> peak_mb;      // CUDA: allocator allocated-bytes peak; CPU: process peak RSS
  std::optional<double> reserved_mb;  // CUDA: allocator reserved-bytes peak; CPU: none
};
Memory peak_memory(const c10::Device& device);

/// GPU name for CUDA devices, the processor's model name for the CPU.
std::string device_name(const c10::Device& device);

/// The PCI bus id of a CUDA device ("0000:3B:00.0", what NVML looks devices up by), or nullopt (CPU, CPU build).
std::optional<std::string> pci_bus_id(const c10::Device& device);

/// The CUDA runtime version in use ("13.0") in a CUDA build (whatever the job's device, like
/// Python's torch.version.cuda), or nullopt in a CPU build.
std::optional<std::string> cuda_runtime_version();

/// Times one iteration: host steady clock around the call and a synchronize, plus CUDA events
/// around the call on the current stream for CUDA devices.
class IterationTimer {
 public:
  explicit IterationTimer(const c10::Device& device);
  ~IterationTimer();
  IterationTimer(const IterationTimer&) = delete;
  IterationTimer& operator=(const IterationTimer&) = delete;

  void start();
  /// Ends the iteration (synchronizing the device first) and returns the host time in ms.
  double stop();
  /// The CUDA-event time in ms of the last start()/stop() pair; nullopt on CPU.
  std::optional<double> last_device_ms() const { return device_ms_; }

 private:
  c10::Device device_;
  long long host_start_ns_ = 0;
  std::optional<double> device_ms_;
  void* start_event_ = nullptr;  // cudaEvent_t, kept opaque so this header needs no CUDA headers
  void* end_event_ = nullptr;
};

}  // namespace sweep::platform
