#include "tensor/storage.h"

#include <cstdlib>
#include <new>

namespace spear {

Storage::Storage(size_t nbytes) : nbytes_(nbytes) {
  // aligned_alloc wants a size that is a multiple of the alignment, and never 0.
  size_t padded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  data_ = std::aligned_alloc(kAlignment, padded == 0 ? kAlignment : padded);
  if (!data_) throw std::bad_alloc();
}

Storage::~Storage() {
  std::free(data_);
}

}  // namespace spear
