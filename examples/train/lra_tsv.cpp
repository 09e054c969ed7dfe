// listops_tsv: the classifier of task listops on LRA's released files (lra_tsv.h) instead of
// generated expressions. task.path is the directory holding basic_train.tsv, basic_val.tsv and
// basic_test.tsv; each split takes task.*_size of its file's examples, drawn from task.seed.
#include "examples/train/lra_tsv.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "examples/train/listops.h"

namespace spear::train {

std::vector<Example> read_listops_tsv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SPEAR_CHECK_T(IOError, in.is_open(), "listops_tsv: cannot open ", path, ": ",
                std::strerror(errno));
  std::vector<Example> examples;
  std::string line;
  int64_t number = 1;
  for (; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto fail = [&](const std::string& what) {
      throw IOError(str_cat(path, ":", number, ": ", what));
    };
    if (number == 1) {
      if (line != "Source\tTarget")
        fail("expected the header Source<TAB>Target, got '" + line.substr(0, 60) + "'");
      continue;
    }
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const size_t tab = line.find('\t');
    if (tab == std::string::npos) fail("no tab between Source and Target");
    if (line.find('\t', tab + 1) != std::string::npos) fail("more than two tab-separated fields");

    std::string source = line.substr(0, tab);
    source.erase(
        std::remove_if(source.begin(), source.end(), [](char c) { return c == '(' || c == ')'; }),
        source.end());
    Example e;
    e.inputs = {kListOpsCls};
    std::istringstream symbols(source);
    for (std::string symbol; symbols >> symbol;) {
      const int64_t id = listops_id(symbol);
      if (id < 0) fail("unknown token '" + symbol + "' in Source");
      e.inputs.push_back(id);
    }
    if (e.inputs.size() == 1) fail("empty Source");

    const std::string target = line.substr(tab + 1);
    if (target.size() != 1 || target[0] < '0' || target[0] > '9')
      fail("Target '" + target + "' is not a label 0-9");
    e.targets = {target[0] - '0'};
    examples.push_back(std::move(e));
  }
  SPEAR_CHECK_T(IOError, !in.bad(), "listops_tsv: cannot read ", path, ": ", std::strerror(errno));
  SPEAR_CHECK_T(IOError, number > 1, path, ": empty file (expected the header Source<TAB>Target)");
  SPEAR_CHECK_T(IOError, !examples.empty(), path, ": no examples after the header");
  return examples;
}

TaskSpec listops_tsv_task(const TaskConfig& config) {
  SPEAR_CHECK_T(ConfigError, !config.path.empty(),
                "config: task listops_tsv needs task.path: the directory holding LRA's "
                "basic_train.tsv, basic_val.tsv and basic_test.tsv (lra_release/listops-1000)");
  TaskSpec spec;
  spec.name = "listops_tsv";
  spec.head = Head::classifier;
  spec.vocab_size = kListOpsVocab;
  spec.num_classes = 10;
  spec.pad_id = kListOpsPad;
  spec.max_input_len = config.max_len + 1;
  const std::string dir = config.path;
  const int64_t max_len = config.max_len;
  spec.load = [dir, max_len](Split split, int64_t size, Generator& gen) {
    const std::string path = dir + "/basic_" + split_name(split) + ".tsv";
    std::vector<Example> all = read_listops_tsv(path);
    const auto available = static_cast<int64_t>(all.size());
    SPEAR_CHECK_T(ConfigError, size <= available, "config: task.", split_name(split), "_size ",
                  size, " exceeds the ", available, " examples of ", path);
    std::vector<Example> chosen;
    for (int64_t i : random_subset(gen, available, size)) {
      Example& e = all[static_cast<size_t>(i)];
      // LRA cuts inputs to its max_length; a silent cut would change the label's meaning.
      SPEAR_CHECK_T(ConfigError, static_cast<int64_t>(e.inputs.size()) - 1 <= max_len,
                    "config: ", path, " holds an expression of ", e.inputs.size() - 1,
                    " tokens, longer than task.max_len ", max_len, " (LRA's files need 1999)");
      chosen.push_back(std::move(e));
    }
    return chosen;
  };
  return spec;
}

}  // namespace spear::train
