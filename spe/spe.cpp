// PositionalCode: sizes, the draw, and the seeds of its noise streams; finding codes in a model.
#include <algorithm>

#include "spe/spe.h"

namespace spear::spe {
namespace {

// splitmix64 (Steele, Lea, Flood 2014): a bijection of 64-bit integers whose output bits all
// depend on every input bit, so nearby inputs (draw 7, draw 8) give unrelated seeds.
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

PositionalCode::PositionalCode(std::string type_name, int64_t heads, int64_t features,
                               int64_t realizations, uint64_t seed)
    : nn::Module(std::move(type_name)),
      heads_(heads),
      features_(features),
      realizations_(realizations),
      seed_(seed) {
  SPEAR_CHECK_T(ConfigError, heads > 0 && features > 0 && realizations > 0, this->type_name(),
                ": heads, features and realizations must be positive, got ", heads, ", ", features,
                ", ", realizations);
  draw_ = register_buffer("draw", zeros({}, i64));
}

void PositionalCode::set_draw(int64_t draw) {
  draw_.fill_(static_cast<double>(draw));
}

int64_t PositionalCode::draw() const {
  return draw_.item<int64_t>();
}

// Three rounds, one per ingredient: a different seed, draw or stream changes every bit.
uint64_t PositionalCode::stream_seed(uint64_t stream) const {
  return splitmix64(splitmix64(splitmix64(seed_) ^ static_cast<uint64_t>(draw())) ^ stream);
}

std::vector<std::shared_ptr<PositionalCode>> positional_codes(const nn::Module& model) {
  std::vector<std::shared_ptr<PositionalCode>> codes;
  for (const auto& [name, module] : model.named_modules())
    if (auto code = std::dynamic_pointer_cast<PositionalCode>(module))
      if (std::find(codes.begin(), codes.end(), code) == codes.end()) codes.push_back(code);
  return codes;
}

void set_draw(const nn::Module& model, int64_t draw) {
  for (const auto& code : positional_codes(model)) code->set_draw(draw);
}

}  // namespace spear::spe
