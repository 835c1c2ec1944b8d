// NVML through dlopen; see energy.hpp. Only the handful of NVML entry points used here are declared,
// with the types of nvml.h (a C API with a stable ABI), so no NVML header is needed to build.
#include "energy.hpp"

#include <dlfcn.h>

#include <cstdio>
#include <string>

#include "platform.hpp"

namespace sweep::energy {

namespace {

using nvmlReturn_t = int;  // NVML_SUCCESS = 0
using nvmlDevice_t = void*;
constexpr nvmlReturn_t kSuccess = 0;
constexpr nvmlReturn_t kNotSupported = 3;
// Below this the counter's update steps are a visible share of the difference (sweep/telemetry.py's SHORT_LOOP_S).
constexpr double kShortLoopMs = 1000.0;

using InitFn = nvmlReturn_t (*)();
using ShutdownFn = nvmlReturn_t (*)();
using ErrorStringFn = const char* (*)(nvmlReturn_t);
using ByPciBusIdFn = nvmlReturn_t (*)(const char*, nvmlDevice_t*);
using EnergyFn = nvmlReturn_t (*)(nvmlDevice_t, unsigned long long*);

template <typename F>
F symbol(void* library, const char* name) {
  return reinterpret_cast<F>(dlsym(library, name));
}

std::string nvml_error(void* library, nvmlReturn_t rc) {
  const auto error_string = symbol<ErrorStringFn>(library, "nvmlErrorString");
  const char* text = error_string ? error_string(rc) : nullptr;
  return text ? std::string(text) : "NVML error " + std::to_string(rc);
}

}  // namespace

Counter::Counter(const c10::Device& device) {
  if (!device.is_cuda()) {
    note_ = "no energy counter on the CPU (NVML measures GPUs)";  // the Python runners' words
    return;
  }
  const std::optional<std::string> bus_id = platform::pci_bus_id(device);
  if (!bus_id) {
    note_ = "the PCI bus id of " + device.str() + " is unknown, so its NVML device cannot be found";
    return;
  }
  library_ = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (library_ == nullptr) {
    const char* err = dlerror();
    note_ = std::string("NVML is not available: libnvidia-ml.so.1 could not be loaded (") +
            (err ? err : "unknown error") + ")";
    return;
  }
  const auto init = symbol<InitFn>(library_, "nvmlInit_v2");
  const auto by_bus_id = symbol<ByPciBusIdFn>(library_, "nvmlDeviceGetHandleByPciBusId_v2");
  if (init == nullptr || by_bus_id == nullptr ||
      symbol<EnergyFn>(library_, "nvmlDeviceGetTotalEnergyConsumption") == nullptr) {
    note_ = "this libnvidia-ml.so.1 lacks nvmlInit_v2, nvmlDeviceGetHandleByPciBusId_v2 or "
            "nvmlDeviceGetTotalEnergyConsumption";
    return;
  }
  if (const nvmlReturn_t rc = init(); rc != kSuccess) {
    note_ = "nvmlInit_v2 failed: " + nvml_error(library_, rc);
    return;
  }
  initialised_ = true;
  nvmlDevice_t handle = nullptr;
  if (const nvmlReturn_t rc = by_bus_id(bus_id->c_str(), &handle); rc != kSuccess) {
    note_ = "NVML has no device at PCI bus id " + *bus_id + ": " + nvml_error(library_, rc);
    return;
  }
  device_ = handle;
}

Counter::~Counter() {
  if (initialised_) {
    if (const auto shutdown = symbol<ShutdownFn>(library_, "nvmlShutdown")) shutdown();
  }
  // library_ stays loaded: unloading NVML at exit buys nothing and has crashed some drivers.
}

std::optional<unsigned long long> Counter::read() {
  if (device_ == nullptr) return std::nullopt;
  unsigned long long mj = 0;
  const nvmlReturn_t rc = symbol<EnergyFn>(library_, "nvmlDeviceGetTotalEnergyConsumption")(device_, &mj);
  if (rc == kSuccess) return mj;
  note_ = rc == kNotSupported ? "this GPU has no total-energy counter (nvmlDeviceGetTotalEnergyConsumption: " +
                                    nvml_error(library_, rc) + "; Volta and newer have one)"
                              : "nvmlDeviceGetTotalEnergyConsumption failed: " + nvml_error(library_, rc);
  device_ = nullptr;  // do not read a failing counter again
  return std::nullopt;
}

Reading reading(const std::optional<unsigned long long>& before, const std::optional<unsigned long long>& after,
                const std::string& note, long long iters, double elapsed_ms) {
  Reading r;
  if (!before || !after) {
    r.note = note;
    return r;
  }
  // The notes are worded as sweep/telemetry.py words them for the Python runners.
  char text[160];
  if (*after <= *before || iters <= 0 || elapsed_ms <= 0) {
    std::snprintf(text, sizeof text, "the energy counter did not advance over the timed loop (%.0f mJ in %.3f s)",
                  static_cast<double>(*after) - static_cast<double>(*before), elapsed_ms / 1e3);
    r.note = text;
    return r;
  }
  const double mj = static_cast<double>(*after - *before);
  r.mj_per_forward = mj / static_cast<double>(iters);
  r.mean_power_w = mj / elapsed_ms;  // mJ / ms = W
  if (elapsed_ms < kShortLoopMs) {
    std::snprintf(text, sizeof text,
                  "timed loop lasted %.2f s: NVML's counter advances in steps, so this is approximate",
                  elapsed_ms / 1e3);
    r.note = text;
  }
  return r;
}

}  // namespace sweep::energy
