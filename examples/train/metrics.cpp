#include "examples/train/metrics.h"

#include <cerrno>
#include <cstring>
#include <vector>

#include "tensor/atomic_file.h"
#include "tensor/error.h"

namespace spear::train {

MetricsLog::MetricsLog(const std::string& path, int64_t keep_through_step) : path_(path) {
  std::vector<std::string> kept;
  if (keep_through_step >= 0) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      const Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      const Json step = j.is_object() ? j.value("step", Json()) : Json();
      if (step.is_number_integer() && step.get<int64_t>() <= keep_through_step)
        kept.push_back(line);
    }
  }
  write_file_atomically("metrics", path, [&](std::ostream& out) {
    for (const std::string& line : kept) out << line << '\n';
  });
  out_.open(path, std::ios::app);
  SPEAR_CHECK_T(IOError, out_.is_open(), "metrics: cannot open ", path, ": ", std::strerror(errno));
}

void MetricsLog::write(const Json& line) {
  out_ << line.dump() << '\n';
  out_.flush();
  SPEAR_CHECK_T(IOError, !out_.fail(), "metrics: writing ", path_, " failed");
}

}  // namespace spear::train
