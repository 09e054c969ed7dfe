// chars: a byte-level causal language model on a text file (task.path; default the GNU GPL v3,
// which every Debian system has under /usr/share/common-licenses). Token = byte value (0-255),
// 256 is padding.
//
// The file is cut into three disjoint regions: the first 80% for training, the next 10% for
// validation, the last 10% for test. An example is a window of N + 1 = task.max_len + 1 bytes at a
// random offset inside its split's region: inputs its first N bytes, targets its last N.
#include <cerrno>
#include <cstring>
#include <fstream>

#include "examples/train/tasks.h"

namespace spear::train {
namespace {

const char* const kDefaultText = "/usr/share/common-licenses/GPL-3";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SPEAR_CHECK_T(IOError, in.is_open(), "chars: cannot open ", path, ": ", std::strerror(errno));
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  SPEAR_CHECK_T(IOError, !in.bad(), "chars: cannot read ", path, ": ", std::strerror(errno));
  return text;
}

}  // namespace

TaskSpec chars_task(const TaskConfig& config) {
  const int64_t N = config.max_len;
  TaskSpec spec;
  spec.name = "chars";
  spec.head = Head::language_model;
  spec.vocab_size = 257;
  spec.num_classes = spec.vocab_size;
  spec.pad_id = 256;
  spec.max_input_len = N;
  spec.text = true;
  const std::string path = config.path.empty() ? kDefaultText : config.path;
  spec.load = [path, N](Split split, int64_t size, Generator& gen) {
    const std::string text = read_text(path);
    const auto bytes = static_cast<int64_t>(text.size());
    const int64_t bounds[] = {0, bytes * 8 / 10, bytes * 9 / 10, bytes};
    const int64_t s = static_cast<int64_t>(split);
    const int64_t begin = bounds[s], end = bounds[s + 1];
    SPEAR_CHECK_T(ConfigError, end - begin >= N + 1, "config: task.max_len ", N,
                  " needs windows of ", N + 1, " bytes, but the ", split_name(split), " region of ",
                  path, " holds ", end - begin, " (the file has ", bytes,
                  " bytes: 80% train, 10% val, 10% test)");
    std::vector<Example> examples;
    for (int64_t offset : randint(begin, end - N, {size}, &gen).to_vector<int64_t>()) {
      Example e;
      for (int64_t i = offset; i < offset + N + 1; ++i) {
        const auto byte = static_cast<int64_t>(static_cast<unsigned char>(text[i]));
        if (i < offset + N) e.inputs.push_back(byte);
        if (i > offset) e.targets.push_back(byte);
      }
      examples.push_back(std::move(e));
    }
    return examples;
  };
  return spec;
}

}  // namespace spear::train
