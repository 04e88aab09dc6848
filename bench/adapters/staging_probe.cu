// Does staging adapters stall the engine? The main thread replays a ~5 ms
// "decode step" (a graph of one busy kernel) and times each step while a second
// thread does what the adapter loader and promotion do: pin host memory
// (cudaHostAlloc), fill it, copy it to new stream-ordered device memory on its own
// stream. Prints step-time p50/p99/max per background activity, and how long each
// background operation took. Build: nvcc -O2 -arch=sm_90a -o staging_probe staging_probe.cu
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { std::printf("%s: %s\n", #x, cudaGetErrorString(e)); std::exit(1); } } while (0)
using Clock = std::chrono::steady_clock;
static double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

__global__ void busy(float* p, long long cycles) {
  long long start = clock64();
  float v = p[threadIdx.x];
  while (clock64() - start < cycles) v = v * 1.000001f + 1e-7f;
  p[threadIdx.x] = v;
}

int main() {
  const size_t bytes = 84ull << 20;
  cudaStream_t s, copy;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  CK(cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking));
  float* scratch;
  CK(cudaMalloc(&scratch, 1 << 20));
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < 64; ++i) busy<<<132, 256, 0, s>>>(scratch, 140000);  // ~64 small kernels, ~5 ms in all
  CK(cudaStreamEndCapture(s, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  auto run = [&](const char* what, std::function<void()> background, int bg_ops) {
    std::atomic<bool> done{false};
    std::vector<double> op_ms;
    std::thread t([&] {
      for (int i = 0; i < bg_ops; ++i) {
        auto t0 = Clock::now();
        background();
        op_ms.push_back(ms(Clock::now() - t0));
      }
      done = true;
    });
    std::vector<double> steps;
    while (!done || steps.size() < 50) {
      auto t0 = Clock::now();
      CK(cudaGraphLaunch(ge, s));
      CK(cudaStreamSynchronize(s));
      steps.push_back(ms(Clock::now() - t0));
    }
    t.join();
    std::sort(steps.begin(), steps.end());
    std::sort(op_ms.begin(), op_ms.end());
    std::printf("%-34s steps %4zu  p50 %6.2f  p99 %6.2f  max %6.2f ms | op p50 %7.2f max %7.2f ms\n", what,
                steps.size(), steps[steps.size() / 2], steps[steps.size() * 99 / 100], steps.back(),
                op_ms.empty() ? 0.0 : op_ms[op_ms.size() / 2], op_ms.empty() ? 0.0 : op_ms.back());
  };
  run("nothing beside", [] { std::this_thread::sleep_for(std::chrono::milliseconds(10)); }, 20);
  std::vector<void*> pinned;
  run("cudaHostAlloc 84 MB", [&] { void* p; CK(cudaHostAlloc(&p, bytes, cudaHostAllocDefault)); pinned.push_back(p); }, 20);
  std::vector<char> pageable(bytes, 1);
  run("memcpy 84 MB into pinned", [&] { std::memcpy(pinned[0], pageable.data(), bytes); }, 20);
  cudaMemPool_t pool;
  CK(cudaDeviceGetDefaultMemPool(&pool, 0));
  uint64_t threshold = 8ull << 30;
  CK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  std::vector<void*> dev;
  auto promote = [&] {
    void* d;
    CK(cudaMallocAsync(&d, bytes, copy));
    CK(cudaMemcpyAsync(d, pinned[dev.size() % pinned.size()], bytes, cudaMemcpyHostToDevice, copy));
    CK(cudaStreamSynchronize(copy));
    dev.push_back(d);
  };
  run("mallocAsync+copy 84 MB (new mem)", promote, 20);
  for (void* d : dev) CK(cudaFreeAsync(d, s));
  CK(cudaStreamSynchronize(s));
  dev.clear();
  run("mallocAsync+copy 84 MB (pooled)", promote, 20);
  run("cudaFreeHost 84 MB", [&] { CK(cudaFreeHost(pinned.back())); pinned.pop_back(); }, 19);
  return 0;
}
