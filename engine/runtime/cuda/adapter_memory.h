// Where adapter weights live on the CUDA backend: staged in pinned host memory
// (pinning 84 MB takes ~40 ms and stalls every stream of the device meanwhile,
// measured on the H200 by bench/adapters/staging_probe.cu: a server reserves its
// pool before it serves and carves adapters out of it), and
// copied to the device on a copy stream of their own into CUDA's stream-ordered
// pool, so a promotion never waits for, or stalls, the forward in flight. Device
// memory whose last user let go is handed back on the compute stream only, after
// the forwards that read it (release_freed, called outside graph capture).
#pragma once
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/backend.h"

namespace lorax::cuda {

class AdapterMemory {
 public:
  explicit AdapterMemory(cudaStream_t compute);
  ~AdapterMemory();
  AdapterMemory(const AdapterMemory&) = delete;
  AdapterMemory& operator=(const AdapterMemory&) = delete;

  // Pins `bytes` now, in 1 GiB chunks, for host_alloc to carve from.
  void reserve(size_t bytes);
  std::shared_ptr<void> host_alloc(size_t bytes);
  Backend::DeviceCopy copy_to_device(std::shared_ptr<void> host, size_t bytes);
  // Frees (stream-ordered, on the compute stream) device copies nobody holds any more.
  void release_freed();

 private:
  // Shared with the deleters, which may run on any thread and after this object.
  struct Pools {
    std::mutex mu;
    std::vector<std::pair<void*, size_t>> chunks;  // reserved pinned memory
    std::map<char*, size_t> free_ranges;           // free parts of the chunks, by address
    std::multimap<size_t, void*> free_host;  // unreserved pinned buffers by size, ready for reuse
    size_t free_host_bytes = 0;
    std::vector<std::pair<void*, cudaEvent_t>> freed_device;  // with the event of the copy that filled it
    void give_back(char* start, size_t size);  // a carved range back to free_ranges (mu held)
  };
  std::shared_ptr<Pools> pools_ = std::make_shared<Pools>();
  cudaStream_t compute_;
  cudaStream_t copy_{};
};

}  // namespace lorax::cuda
