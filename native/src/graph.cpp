// CUDA-graph capture and replay of a Model; see graph.hpp. CUDA code only behind SWEEP_WITH_CUDA.
#include "graph.hpp"

#include <c10/util/Exception.h>

#include <algorithm>
#include <string>

#include "platform.hpp"

#ifdef SWEEP_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace sweep {

#ifdef SWEEP_WITH_CUDA

struct GraphedForward::Impl {
  // Owned only once the capture succeeded: after a failed capture the graph object is left alone
  // (leaked) rather than destroyed in a state its destructor may not expect; the process ends soon.
  at::cuda::CUDAGraph* graph = nullptr;
  c10::IValue outputs;
  ~Impl() { delete graph; }
};

namespace {

/// After a failed capture the side stream may still be capturing: end the capture and drop its graph,
/// so that later CUDA calls (writing the result, exiting) do not fail on a capturing stream.
void abandon_capture(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
    cudaGraph_t graph = nullptr;
    (void)cudaStreamEndCapture(stream, &graph);
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
  }
  (void)cudaGetLastError();  // clear a non-sticky error left by the capture
}

}  // namespace

GraphedForward::GraphedForward(Model& model, const std::vector<at::Tensor>& inputs, const c10::Device& device,
                               int64_t warmup)
    : impl_(std::make_unique<Impl>()) {
  // Capture needs a stream other than the default one; warming up on that same stream keeps per-stream
  // lazy state (cuBLAS workspaces) out of the captured region.
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
  platform::synchronize(device);  // the inputs were written on the current stream
  {
    const c10::cuda::CUDAStreamGuard on_side(side);
    for (int64_t i = 0; i < std::max<int64_t>(warmup, 1); ++i) (void)model.forward(inputs);
    side.synchronize();
    auto* graph = new at::cuda::CUDAGraph();
    try {
      graph->capture_begin();
      impl_->outputs = model.forward(inputs);
      graph->capture_end();
    } catch (const c10::Error& e) {
      abandon_capture(side.stream());
      throw CaptureError(e.what_without_backtrace());
    } catch (const std::exception& e) {
      abandon_capture(side.stream());
      throw CaptureError(e.what());
    }
    impl_->graph = graph;
  }
  platform::synchronize(device);
}

GraphedForward::~GraphedForward() = default;

void GraphedForward::replay() { impl_->graph->replay(); }

const c10::IValue& GraphedForward::outputs() const { return impl_->outputs; }

#else  // a CPU build: no CUDA graphs (main.cpp reports CPU devices as unsupported before getting here)

struct GraphedForward::Impl {
  c10::IValue outputs;
};

GraphedForward::GraphedForward(Model& /*model*/, const std::vector<at::Tensor>& /*inputs*/,
                               const c10::Device& device, int64_t /*warmup*/) {
  throw CaptureError("sweep-bench was built against a CPU-only libtorch: no CUDA graphs on " + device.str());
}

GraphedForward::~GraphedForward() = default;

void GraphedForward::replay() {}

const c10::IValue& GraphedForward::outputs() const { return impl_->outputs; }

#endif

}  // namespace sweep
