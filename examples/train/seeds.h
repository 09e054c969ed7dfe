// Independent random streams from one seed.
//
// A run draws random numbers for several purposes: the data set, the initial weights, dropout,
// the choice of each step's batch. Each purpose gets its own Generator, seeded by
// derive_seed(seed, purpose), so that changing how many numbers one of them draws (a wider
// model, say) never shifts the numbers another one sees (the batches stay the same).
#pragma once
#include <cstdint>

#include "tensor/random.h"

namespace spear::train {

enum class Stream : uint64_t {
  init = 1,           // weights and dropout (the model's generator)
  default_generator,  // anything drawing from spear::default_generator()
  batches,            // which training examples step s uses (index = s)
  train_split,        // the data set's three splits
  val_split,
  test_split,
};

// A seed for `stream` (and an index within it) of `seed`. Philox scrambles its 128-bit counter
// under the key `seed`, so nearby streams or indices give unrelated seeds.
inline uint64_t derive_seed(uint64_t seed, Stream stream, uint64_t index = 0) {
  const auto s = static_cast<uint64_t>(stream);
  const PhiloxCounter block =
      philox4x32({static_cast<uint32_t>(s), static_cast<uint32_t>(s >> 32),
                  static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32)},
                 {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  return static_cast<uint64_t>(block[0]) | static_cast<uint64_t>(block[1]) << 32;
}

}  // namespace spear::train
