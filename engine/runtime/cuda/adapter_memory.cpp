#include "runtime/cuda/adapter_memory.h"

#include <cstdint>
#include <string>

#include "runtime/cuda/cuda_check.h"

namespace lorax::cuda {

namespace {
// Pinned buffers kept for reuse beyond those in use; more than this is given back.
constexpr size_t kMaxCachedHostBytes = size_t{4} << 30;
// Freed device memory CUDA's pool keeps instead of returning it at every synchronization.
constexpr uint64_t kPoolReleaseThreshold = uint64_t{8} << 30;
}  // namespace

AdapterMemory::AdapterMemory(cudaStream_t compute) : compute_(compute) {
  CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  cudaMemPool_t pool;
  CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t threshold = kPoolReleaseThreshold;
  CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
}

AdapterMemory::~AdapterMemory() {
  cudaStreamSynchronize(copy_);
  release_freed();
  cudaStreamSynchronize(compute_);
  std::lock_guard lock(pools_->mu);
  for (auto& [size, p] : pools_->free_host) cudaFreeHost(p);
  pools_->free_host.clear();
  for (auto& [p, size] : pools_->chunks) cudaFreeHost(p);
  pools_->chunks.clear();
  pools_->free_ranges.clear();
  pools_->free_host_bytes = 0;
  cudaStreamDestroy(copy_);
}

// Ranges merge only within one chunk: two cudaHostAlloc chunks may lie side by
// side in the address space, but a copy may not span them (invalid argument).
void AdapterMemory::Pools::give_back(char* start, size_t size) {
  auto chunk_of = [&](const char* p) {
    for (size_t i = 0; i < chunks.size(); ++i) {
      const char* c = static_cast<const char*>(chunks[i].first);
      if (p >= c && p < c + chunks[i].second) return i;
    }
    return chunks.size();
  };
  const size_t chunk = chunk_of(start);
  auto next = free_ranges.lower_bound(start);
  if (next != free_ranges.end() && start + size == next->first && chunk_of(next->first) == chunk) {
    size += next->second;
    next = free_ranges.erase(next);
  }
  if (next != free_ranges.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start && chunk_of(prev->first) == chunk) {
      prev->second += size;
      return;
    }
  }
  free_ranges[start] = size;
}

void AdapterMemory::reserve(size_t bytes) {
  constexpr size_t kChunk = size_t{1} << 30;
  std::lock_guard lock(pools_->mu);
  size_t have = 0;
  for (auto& [p, size] : pools_->chunks) have += size;
  while (have < bytes) {
    const size_t size = std::min(kChunk, (bytes - have + 4095) / 4096 * 4096);
    void* p = nullptr;
    const cudaError_t e = cudaHostAlloc(&p, size, cudaHostAllocDefault);
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw std::runtime_error("cannot pin " + std::to_string(bytes) + " bytes of host memory for adapters: " +
                               cudaGetErrorString(e));
    }
    pools_->chunks.push_back({p, size});
    pools_->free_ranges[static_cast<char*>(p)] = size;
    have += size;
  }
}

std::shared_ptr<void> AdapterMemory::host_alloc(size_t bytes) {
  bytes = std::max<size_t>((bytes + 4095) / 4096 * 4096, 4096);
  std::weak_ptr<Pools> pools = pools_;
  {
    std::lock_guard lock(pools_->mu);
    if (!pools_->chunks.empty()) {  // carve from the reservation: first fit, never a new pin
      for (auto it = pools_->free_ranges.begin(); it != pools_->free_ranges.end(); ++it) {
        if (it->second < bytes) continue;
        char* p = it->first;
        const size_t rest = it->second - bytes;
        pools_->free_ranges.erase(it);
        if (rest > 0) pools_->free_ranges[p + bytes] = rest;
        return std::shared_ptr<void>(p, [pools, bytes](void* q) {
          auto s = pools.lock();
          if (!s) return;  // the reservation went with the backend
          std::lock_guard l(s->mu);
          s->give_back(static_cast<char*>(q), bytes);
        });
      }
      throw HostMemoryFull("the reserved host memory for adapters is used up");
    }
  }
  void* p = nullptr;
  {
    std::lock_guard lock(pools_->mu);
    auto it = pools_->free_host.find(bytes);
    if (it != pools_->free_host.end()) {
      p = it->second;
      pools_->free_host.erase(it);
      pools_->free_host_bytes -= bytes;
    }
  }
  if (!p) {
    const cudaError_t e = cudaHostAlloc(&p, bytes, cudaHostAllocDefault);
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw std::runtime_error("cannot pin " + std::to_string(bytes) + " bytes of host memory: " + cudaGetErrorString(e));
    }
  }
  return std::shared_ptr<void>(p, [pools, bytes](void* q) {
    if (auto s = pools.lock()) {
      std::lock_guard lock(s->mu);
      if (s->free_host_bytes + bytes <= kMaxCachedHostBytes) {
        s->free_host.emplace(bytes, q);
        s->free_host_bytes += bytes;
        return;
      }
    }
    CUDA_WARN(cudaFreeHost(q));
  });
}

Backend::DeviceCopy AdapterMemory::copy_to_device(std::shared_ptr<void> host, size_t bytes) {
  void* dev = nullptr;
  const cudaError_t e = cudaMallocAsync(&dev, std::max<size_t>(bytes, 256), copy_);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(std::string("device memory: ") + cudaGetErrorString(e));
  }
  if (const cudaError_t c = cudaMemcpyAsync(dev, host.get(), bytes, cudaMemcpyHostToDevice, copy_); c != cudaSuccess) {
    cudaGetLastError();
    CUDA_WARN(cudaFreeAsync(dev, copy_));
    throw std::runtime_error(std::string("copy to the device: ") + cudaGetErrorString(c));
  }
  // One event: the memory's kernels wait for it (ready()), and so does its free.
  cudaEvent_t copied;
  CUDA_CHECK(cudaEventCreateWithFlags(&copied, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventRecord(copied, copy_));
  std::weak_ptr<Pools> pools = pools_;
  std::shared_ptr<void> memory(dev, [pools, copied](void* p) {
    if (auto s = pools.lock()) {
      std::lock_guard lock(s->mu);
      s->freed_device.push_back({p, copied});
    }  // else the backend, and with it the context, is gone: nothing to free
  });
  // `memory` outlives every call of ready(): both live in the DeviceCopy, and the
  // host buffer is kept until the copy is done.
  return {std::move(memory), [copied, host = std::move(host)] { return CUDA_WARN(cudaEventQuery(copied)) == cudaSuccess; }};
}

void AdapterMemory::release_freed() {
  std::vector<std::pair<void*, cudaEvent_t>> freed;
  {
    std::lock_guard lock(pools_->mu);
    freed.swap(pools_->freed_device);
  }
  for (auto& [p, copied] : freed) {
    CUDA_CHECK(cudaStreamWaitEvent(compute_, copied, 0));
    CUDA_CHECK(cudaFreeAsync(p, compute_));
    CUDA_WARN(cudaEventDestroy(copied));
  }
}

}  // namespace lorax::cuda
