#include "tensor/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "tensor/error.h"

namespace spear {

void write_file_atomically(const char* op, const std::string& path,
                           const std::function<void(std::ostream&)>& write) {
  const std::string tmp = str_cat(path, ".tmp.", getpid());
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  SPEAR_CHECK_T(IOError, out.is_open(), op, ": ", path, ": cannot create ", tmp, ": ",
                std::strerror(errno));
  try {
    write(out);
    out.close();  // flushes; a full disk shows up here
    SPEAR_CHECK_T(IOError, !out.fail(), op, ": ", path, ": writing ", tmp, " failed");
    SPEAR_CHECK_T(IOError, std::rename(tmp.c_str(), path.c_str()) == 0, op, ": ", path,
                  ": cannot rename ", tmp, " to it: ", std::strerror(errno));
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

}  // namespace spear
