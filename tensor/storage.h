// A 64-byte aligned byte buffer shared by every view of a tensor. The version counter goes up on
// each in-place write, so autograd can tell when a tensor it saved has been changed.
#pragma once
#include <cstddef>
#include <cstdint>

namespace spear {

class Storage {
 public:
  static constexpr size_t kAlignment = 64;

  explicit Storage(size_t nbytes);  // uninitialised memory
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  size_t capacity_ = 0;  // bytes actually allocated (a size class; see storage.cpp)
  uint64_t version_ = 0;
};

// Bytes held by all live Storages, and the most held at once since the last reset: what
// benchmarks report as a layer's memory (tensor data only; not the allocator's own overhead).
struct MemoryStats {
  int64_t current_bytes = 0;
  int64_t peak_bytes = 0;
};
MemoryStats memory_stats();
void reset_peak_memory();  // peak := current
// Returns the large blocks kept for reuse (storage.cpp) to the system.
void empty_cache();

}  // namespace spear
