// safetensors: the checkpoint format of Hugging Face, which PyTorch, NumPy and JAX all read.
//
// A file is an 8-byte little-endian length N, N bytes of JSON header, then the raw tensor bytes:
//
//   {"weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...,
//    "__metadata__": {"format": "pt"}}
//
// Offsets count bytes from the start of the data buffer that follows the header; data is
// little-endian and row-major. spear reads and writes the dtypes F32, F64 and I64.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace spear {

// Tensors by name, in order (a checkpoint keeps the order its module registered them in).
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct SafetensorsFile {
  NamedTensors tensors;  // in the order of their bytes in the file
  std::map<std::string, std::string> metadata;

  // The tensor called `name`; throws spear::Error when there is none.
  const Tensor& at(const std::string& name) const;
};

// Writes `tensors` in the given order, views included (their elements are written row-major).
// The file appears at `path` complete or not at all: it is written to a temporary file in the
// same directory and renamed over `path`. Throws IOError naming the path on any failure, and on
// empty, duplicate or reserved ("__metadata__") names.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads a whole file into new contiguous tensors. Every malformed file (bad header, unknown
// dtype, size mismatch, overlapping or missing bytes, duplicate names, ...) throws IOError naming
// the file, the problem and, when there is one, the tensor.
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace spear
