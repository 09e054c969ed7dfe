// IDX files, the format of MNIST and Fashion-MNIST: a header, then the array's bytes, row-major.
//
//   bytes 0-1   0x00 0x00
//   byte  2     the element type: 0x08 for unsigned bytes (the only one these data sets use)
//   byte  3     the number of dimensions d
//   then        d sizes, big-endian uint32
//   then        the elements
//
// Files are read through zlib, which reads gzip-compressed files (as the data sets ship) and
// plain ones alike.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace spear::train {

struct IdxArray {
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // product(shape) elements
};

// Throws IOError naming the path: the file is missing or unreadable, not gzip or IDX (the magic
// number is wrong), of another element type, shorter than its header says, or longer.
IdxArray read_idx(const std::string& path);

}  // namespace spear::train
