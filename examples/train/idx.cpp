#include "examples/train/idx.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "tensor/error.h"

namespace spear::train {
namespace {

struct GzClose {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<std::remove_pointer_t<gzFile>, GzClose>;

// Reads up to n bytes into `out`; returns how many it got (fewer only at the end of the data).
size_t read_some(gzFile file, const std::string& path, uint8_t* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    // gzread takes an unsigned count; read in chunks well below its limit.
    const auto chunk = static_cast<unsigned>(std::min<size_t>(n - got, size_t{1} << 30));
    const int r = gzread(file, out + got, chunk);
    if (r < 0) {
      int code = 0;
      const char* message = gzerror(file, &code);
      throw IOError(str_cat(path,
                            ": cannot read: ", code == Z_ERRNO ? std::strerror(errno) : message,
                            " (the file is damaged)"));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  errno = 0;
  const GzFile file(gzopen(path.c_str(), "rb"));
  SPEAR_CHECK_T(IOError, file != nullptr, "cannot open ", path, ": ",
                errno ? std::strerror(errno) : "out of memory");
  uint8_t magic[4];
  const size_t got = read_some(file.get(), path, magic, 4);
  SPEAR_CHECK_T(IOError, got == 4 && magic[0] == 0 && magic[1] == 0, path,
                ": not an IDX file (it does not start with the magic bytes 00 00)");
  SPEAR_CHECK_T(IOError, magic[2] == 0x08, path, ": IDX element type ", static_cast<int>(magic[2]),
                ", expected 8 (unsigned bytes)");
  IdxArray array;
  uint64_t total = 1;
  for (int d = 0; d < magic[3]; ++d) {
    uint8_t be[4];
    SPEAR_CHECK_T(IOError, read_some(file.get(), path, be, 4) == 4, path,
                  ": truncated: the header ends inside the size of dimension ", d);
    const uint64_t size =
        uint64_t{be[0]} << 24 | uint64_t{be[1]} << 16 | uint64_t{be[2]} << 8 | be[3];
    array.shape.push_back(static_cast<int64_t>(size));
    total *= size;
    // 2^40 bytes is far beyond any data set read here; the bound keeps the product exact.
    SPEAR_CHECK_T(IOError, total < (uint64_t{1} << 40), path, ": implausible sizes ", array.shape);
  }
  array.data.resize(total);
  const size_t data = read_some(file.get(), path, array.data.data(), total);
  SPEAR_CHECK_T(IOError, data == total, path, ": truncated: the header announces ", total,
                " bytes of data for shape ", array.shape, ", the file holds ", data);
  uint8_t extra;
  SPEAR_CHECK_T(IOError, read_some(file.get(), path, &extra, 1) == 0, path,
                ": more bytes than the header announces (", total, " for shape ", array.shape, ")");
  return array;
}

}  // namespace spear::train
