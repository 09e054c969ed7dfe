// Joining tensors along a dim and cutting one apart. cat copies each piece into its slot, a narrow
// view of the output; stack is cat of unsqueezed pieces. split and chunk only make narrow views,
// so they copy nothing and writing through a piece writes into x.
#include <algorithm>

#include "tensor/kernels/iterate.h"
#include "tensor/kernels/kernels.h"

namespace spear::kernels {
namespace {

// Checks that xs share dtype, rank and every size except along `free_dim` (-1: no exception, as
// for stack). The message names the offending tensor by its position in the list.
void check_pieces(const std::vector<Tensor>& xs, int64_t free_dim, const char* op) {
  const Tensor& first = xs[0];
  for (size_t i = 1; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    SPEAR_CHECK_DTYPE(x.dtype() == first.dtype(), op, ": tensor ", i, " has dtype ", x.dtype(),
                      " but tensor 0 has dtype ", first.dtype());
    bool match = x.dim() == first.dim();
    for (int64_t d = 0; match && d < x.dim(); ++d)
      match = d == free_dim || x.shape()[d] == first.shape()[d];
    SPEAR_CHECK_SHAPE(match, op, ": tensor ", i, " has shape ", x.shape(),
                      " but tensor 0 has shape ", first.shape(),
                      free_dim < 0 ? std::string("; shapes must match")
                                   : str_cat("; sizes must match except in dim ", free_dim));
  }
}

}  // namespace

// xs[i]: (.., S_i, ..) along dim, otherwise one shape -> (.., sum of S_i, ..)
Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  SPEAR_CHECK(!xs.empty(), "cat: expected a non-empty list of tensors");
  SPEAR_CHECK_SHAPE(xs[0].dim() > 0, "cat: cannot concatenate 0-d tensors (stack them instead)");
  dim = wrap_dim(dim, xs[0].dim(), "cat");
  check_pieces(xs, dim, "cat");
  Shape shape = xs[0].shape();
  shape[dim] = 0;
  for (const Tensor& x : xs) shape[dim] += x.shape()[dim];
  Tensor out = Tensor::empty(shape, xs[0].dtype());
  int64_t start = 0;
  for (const Tensor& x : xs) {
    copy_into(narrow(out, dim, start, x.shape()[dim]), x);
    start += x.shape()[dim];
  }
  return out;
}

// xs[i]: S each -> S with a new dim of size xs.size() inserted at dim
Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  SPEAR_CHECK(!xs.empty(), "stack: expected a non-empty list of tensors");
  check_pieces(xs, -1, "stack");
  dim = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> pieces;
  pieces.reserve(xs.size());
  for (const Tensor& x : xs) pieces.push_back(unsqueeze(x, dim));
  return cat(pieces, dim);
}

// x: (.., S, ..) -> views (.., size, ..), the last (.., S - k * size, ..) when size does not
// divide S. An empty dim gives one empty view, as in PyTorch.
std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim) {
  SPEAR_CHECK_SHAPE(x.dim() > 0, "split: cannot split a 0-d tensor");
  SPEAR_CHECK_SHAPE(size > 0, "split: size must be positive, got ", size);
  dim = wrap_dim(dim, x.dim(), "split");
  const int64_t S = x.shape()[dim];
  const int64_t n = std::max<int64_t>((S + size - 1) / size, 1);
  std::vector<Tensor> pieces;
  pieces.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    pieces.push_back(narrow(x, dim, i * size, std::min(size, S - i * size)));
  return pieces;
}

// x: (.., S, ..) -> views of ceil(S / chunks) along dim. That size may need fewer than `chunks`
// pieces (S=5, chunks=4 gives 2, 2, 1); an empty dim gives `chunks` empty views, as in PyTorch.
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  SPEAR_CHECK_SHAPE(x.dim() > 0, "chunk: cannot chunk a 0-d tensor");
  SPEAR_CHECK_SHAPE(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  dim = wrap_dim(dim, x.dim(), "chunk");
  const int64_t S = x.shape()[dim];
  if (S > 0) return split(x, (S + chunks - 1) / chunks, dim);
  std::vector<Tensor> pieces;  // distinct views, so each piece is a tensor of its own
  for (int64_t i = 0; i < chunks; ++i) pieces.push_back(narrow(x, dim, 0, 0));
  return pieces;
}

}  // namespace spear::kernels
