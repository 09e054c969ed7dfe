#include "tensor/storage.h"

#include <atomic>
#include <cstdlib>
#include <new>

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

}  // namespace

MemoryStats memory_stats() {
  return {live_bytes.load(), peak_bytes.load()};
}

void reset_peak_memory() {
  peak_bytes.store(live_bytes.load());
}

Storage::Storage(size_t nbytes) : nbytes_(nbytes) {
  // aligned_alloc wants a size that is a multiple of the alignment, and never 0.
  size_t padded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  data_ = std::aligned_alloc(kAlignment, padded == 0 ? kAlignment : padded);
  if (!data_) throw std::bad_alloc();
  count_allocation(static_cast<int64_t>(nbytes));
}

Storage::~Storage() {
  std::free(data_);
  live_bytes.fetch_sub(static_cast<int64_t>(nbytes_));
}

}  // namespace spear
