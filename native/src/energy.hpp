// Energy of the timed loop from NVML's total-energy counter, with NVML loaded at run time (no link-time
// dependency: the binary runs where libnvidia-ml.so.1 is missing, and says so).
#pragma once

#include <c10/core/Device.h>

#include <optional>
#include <string>

namespace sweep::energy {

/// The GPU's total-energy counter (nvmlDeviceGetTotalEnergyConsumption, mJ since the driver loaded;
/// Volta and newer). When it cannot be read, read() returns nullopt and note() says why.
class Counter {
 public:
  /// Opens NVML and the GPU of `device` (found by its PCI bus id, so CUDA_VISIBLE_DEVICES does not matter).
  explicit Counter(const c10::Device& device);
  ~Counter();
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  /// The counter in mJ, or nullopt (note() says why).
  std::optional<unsigned long long> read();
  const std::string& note() const { return note_; }

 private:
  void* library_ = nullptr;  // dlopen handle of libnvidia-ml.so.1
  void* device_ = nullptr;   // nvmlDevice_t
  bool initialised_ = false;
  std::string note_;
};

/// What one timed loop cost: energy per forward (mJ) and mean power (W), or nulls and the reason.
struct Reading {
  std::optional<double> mj_per_forward;
  std::optional<double> mean_power_w;
  std::string note;
};

/// Reads the counter before and after a loop of `iters` forwards that took `elapsed_ms` on the host.
Reading reading(const std::optional<unsigned long long>& before, const std::optional<unsigned long long>& after,
                const std::string& note, long long iters, double elapsed_ms);

}  // namespace sweep::energy
