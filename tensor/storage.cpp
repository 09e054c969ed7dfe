#include "tensor/storage.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace spear {
namespace {

std::atomic<int64_t> live_bytes{0};
std::atomic<int64_t> peak_bytes{0};

void count_allocation(int64_t bytes) {
  const int64_t now = live_bytes.fetch_add(bytes) + bytes;
  int64_t peak = peak_bytes.load();
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
  }
}

// A training step allocates the same large tensors every time. glibc returns blocks above 32 MiB
// to the OS on free, and the next step faults every page back in, which for big tensors costs
// more than the arithmetic. So freed blocks of 1 MiB or more are kept here, by size class, and
// handed out again. Classes have 4 sizes per power of two (at most 25% unused), and the cache
// holds at most kCacheLimit bytes. Under AddressSanitizer the cache is off, so every
// use-after-free is still caught.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kCacheFrom = SIZE_MAX;
#else
constexpr size_t kCacheFrom = size_t(1) << 20;
#endif
constexpr size_t kCacheLimit = size_t(2) << 30;
constexpr size_t kHugePage = size_t(2) << 20;

struct BlockCache {
  std::mutex mutex;
  std::map<size_t, std::vector<void*>> free_blocks;  // size class -> blocks
  size_t cached_bytes = 0;
};

BlockCache& cache() {
  static BlockCache* c = new BlockCache();  // never destroyed: Storages may outlive statics
  return *c;
}

// The capacity actually allocated for a request of `bytes`.
size_t size_class(size_t bytes) {
  bytes = (bytes + Storage::kAlignment - 1) / Storage::kAlignment * Storage::kAlignment;
  if (bytes < kCacheFrom) return bytes == 0 ? Storage::kAlignment : bytes;
  size_t octave = size_t(1) << (63 - __builtin_clzll(bytes));  // largest power of two <= bytes
  size_t step = octave / 4;
  return (bytes + step - 1) / step * step;
}

void* acquire(size_t capacity) {
  if (capacity >= kCacheFrom) {
    BlockCache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free_blocks.find(capacity);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      void* block = it->second.back();
      it->second.pop_back();
      c.cached_bytes -= capacity;
      return block;
    }
  }
  // Big blocks start on a 2 MiB boundary and ask for transparent huge pages: kernels stream
  // through them, and with 4 KiB pages every 4 KiB read costs a TLB miss.
  const bool huge = capacity >= kHugePage;
  void* block = nullptr;
  if (posix_memalign(&block, huge ? kHugePage : Storage::kAlignment, capacity) != 0)
    throw std::bad_alloc();
  if (huge) madvise(block, capacity, MADV_HUGEPAGE);
  return block;
}

void release(void* block, size_t capacity) {
  if (capacity >= kCacheFrom) {
    BlockCache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.cached_bytes + capacity <= kCacheLimit) {
      c.free_blocks[capacity].push_back(block);
      c.cached_bytes += capacity;
      return;
    }
  }
  std::free(block);
}

}  // namespace

MemoryStats memory_stats() {
  return {live_bytes.load(), peak_bytes.load()};
}

void reset_peak_memory() {
  peak_bytes.store(live_bytes.load());
}

void empty_cache() {
  BlockCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& [capacity, blocks] : c.free_blocks)
    for (void* block : blocks) std::free(block);
  c.free_blocks.clear();
  c.cached_bytes = 0;
}

Storage::Storage(size_t nbytes) : nbytes_(nbytes), capacity_(size_class(nbytes)) {
  data_ = acquire(capacity_);
  count_allocation(static_cast<int64_t>(nbytes));
}

Storage::~Storage() {
  release(data_, capacity_);
  live_bytes.fetch_sub(static_cast<int64_t>(nbytes_));
}

}  // namespace spear
