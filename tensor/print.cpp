// operator<< for tensors, in PyTorch's layout:
//   tensor([[ 1.0000, -2.5000],
//           [ 3.0000,  4.0000]], shape=[2, 2], dtype=f32)
// Tensors of more than 1000 elements show only the first and last 3 entries of each dim.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace spear {
namespace {

constexpr int64_t kSummariseAbove = 1000;
constexpr int64_t kEdgeItems = 3;

struct Printer {
  const Tensor& t;
  std::vector<double> values;  // row-major copy, as doubles
  bool summarise;
  bool integral;
  bool scientific = false;
  int width = 1;

  std::string format(double v) const {
    char buf[64];
    if (integral)
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    else if (scientific)
      std::snprintf(buf, sizeof buf, "%.4e", v);
    else
      std::snprintf(buf, sizeof buf, "%.4f", v);
    return buf;
  }

  bool shown(int64_t i, int64_t size) const {
    return !summarise || size <= 2 * kEdgeItems || i < kEdgeItems || i >= size - kEdgeItems;
  }

  // Walks the shown elements to pick a format and a common width.
  void measure(int64_t dim, int64_t base) {
    if (dim == t.dim()) {
      width = std::max(width, static_cast<int>(format(values[base]).size()));
      return;
    }
    int64_t inner = 1;
    for (int64_t d = dim + 1; d < t.dim(); ++d) inner *= t.shape()[d];
    for (int64_t i = 0; i < t.shape()[dim]; ++i)
      if (shown(i, t.shape()[dim])) measure(dim + 1, base + i * inner);
  }

  void print(std::ostream& os, int64_t dim, int64_t base, int indent) const {
    if (dim == t.dim()) {
      std::string s = format(values[base]);
      os << std::string(width - s.size(), ' ') << s;
      return;
    }
    int64_t size = t.shape()[dim], inner = 1;
    for (int64_t d = dim + 1; d < t.dim(); ++d) inner *= t.shape()[d];
    os << '[';
    bool last_dim = dim == t.dim() - 1;
    for (int64_t i = 0; i < size; ++i) {
      if (!shown(i, size)) {
        if (i == kEdgeItems) {
          os << (last_dim ? "..., " : "...,\n" + std::string(indent + 1, ' '));
        }
        continue;
      }
      print(os, dim + 1, base + i * inner, indent + 1);
      if (i + 1 < size) {
        if (last_dim)
          os << ", ";
        else
          os << ',' << std::string(t.dim() - dim - 1, '\n') << std::string(indent + 1, ' ');
      }
    }
    os << ']';
  }
};

}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  Printer p{t, t.to_vector<double>(), t.numel() > kSummariseAbove, t.dtype() == i64};
  if (!p.integral) {
    double biggest = 0, smallest = INFINITY;
    for (double v : p.values)
      if (std::isfinite(v) && v != 0) {
        biggest = std::max(biggest, std::fabs(v));
        smallest = std::min(smallest, std::fabs(v));
      }
    p.scientific = biggest >= 1e8 || smallest < 1e-4;
  }
  if (t.numel() > 0) p.measure(0, 0);
  os << "tensor(";
  if (t.numel() == 0)
    os << "[]";
  else
    p.print(os, 0, 0, 7);
  return os << ", shape=" << t.shape() << ", dtype=" << t.dtype() << ')';
}

}  // namespace spear
