// listops: LRA's ListOps generator with the brackets kept (listops.h), as a classifier:
//
//   inputs   C [MAX 2 [MIN 4 7 ] 0 ]       (C: the CLS token, for model.pooling = cls)
//   label    4
//
// Expressions are drawn until one has task.min_len .. task.max_len tokens; no expression occurs
// twice in the data set (LRA collects its trees in a set).
#include <algorithm>
#include <limits>
#include <sstream>

#include "examples/train/listops.h"
#include "examples/train/tasks.h"

namespace spear::train {
namespace {

const char* const kSymbols[kListOpsVocab] = {"<pad>", "<cls>", "0",    "1",   "2", "3",
                                             "4",     "5",     "6",    "7",   "8", "9",
                                             "[MIN",  "[MAX",  "[MED", "[SM", "]"};

// LRA's VALUE_P: below max_depth a node is an operator with this probability, else a digit.
constexpr double kOperatorP = 0.25;

// Uniform numbers from `gen`, drawn a block at a time: a tree takes tens to hundreds of draws,
// and a tensor for each would cost more than the tree.
class Uniforms {
 public:
  explicit Uniforms(Generator& gen) : gen_(gen) {}
  double next() {
    if (used_ == block_.size()) {
      block_ = rand({256}, f64, &gen_).to_vector<double>();
      used_ = 0;
    }
    return block_[used_++];
  }
  // Uniform in [low, high], both included (Python's random.randint).
  int64_t integer(int64_t low, int64_t high) {
    return low + static_cast<int64_t>(next() * static_cast<double>(high - low + 1));
  }

 private:
  Generator& gen_;
  std::vector<double> block_;
  size_t used_ = 0;
};

// generate_tree(depth, max_depth, max_args) of LRA, writing the tokens to `out`. Returns false as
// soon as the expression is longer than max_len: it would be rejected, so finishing it is wasted
// work, and stopping early leaves the distribution of accepted trees unchanged.
bool grow(Uniforms& u, int64_t depth, const ListOpsLimits& limits, std::vector<int64_t>& out) {
  const double r = depth < limits.max_depth ? u.next() : 1.0;
  if (r > kOperatorP) {
    out.push_back(kListOpsDigit0 + u.integer(0, 9));
  } else {
    const int64_t args = u.integer(2, limits.max_args);
    const size_t op = out.size();
    out.push_back(kListOpsMin);  // a placeholder: LRA draws the operator after the arguments
    for (int64_t i = 0; i < args; ++i)
      if (!grow(u, depth + 1, limits, out)) return false;
    out[op] = kListOpsMin + u.integer(0, 3);
    out.push_back(kListOpsEnd);
  }
  return static_cast<int64_t>(out.size()) <= limits.max_len;
}

int64_t apply(int64_t op, std::vector<int64_t> args) {
  SPEAR_CHECK(!args.empty(), "listops: ", listops_symbol(op), " without arguments");
  std::sort(args.begin(), args.end());
  const size_t n = args.size();
  switch (op) {
    case kListOpsMin:
      return args.front();
    case kListOpsMax:
      return args.back();
    case kListOpsMed:  // int(numpy.median(args)): the mean of the middle two, truncated
      return n % 2 ? args[n / 2] : (args[n / 2 - 1] + args[n / 2]) / 2;
    default: {  // kListOpsSum
      int64_t sum = 0;
      for (int64_t a : args) sum += a;
      return sum % 10;
    }
  }
}

}  // namespace

int64_t listops_id(const std::string& symbol) {
  for (int64_t id = kListOpsDigit0; id < kListOpsVocab; ++id)
    if (symbol == kSymbols[id]) return id;
  return -1;
}

const char* listops_symbol(int64_t id) {
  SPEAR_CHECK(0 <= id && id < kListOpsVocab, "listops: no token has id ", id);
  return kSymbols[id];
}

std::vector<int64_t> listops_ids(const std::string& text) {
  std::istringstream in(text);
  std::vector<int64_t> ids;
  for (std::string symbol; in >> symbol;) {
    const int64_t id = listops_id(symbol);
    SPEAR_CHECK(id >= 0, "listops: unknown symbol '", symbol, "'");
    ids.push_back(id);
  }
  return ids;
}

std::string listops_text(const std::vector<int64_t>& ids) {
  std::string text;
  for (int64_t id : ids) text += (text.empty() ? "" : " ") + std::string(listops_symbol(id));
  return text;
}

int64_t listops_value(const std::vector<int64_t>& ids) {
  // The operators still open, each with the values of its arguments so far.
  std::vector<std::pair<int64_t, std::vector<int64_t>>> open;
  int64_t result = -1;
  auto deliver = [&](int64_t value) {
    if (!open.empty()) {
      open.back().second.push_back(value);
      return;
    }
    SPEAR_CHECK(result < 0, "listops: more than one expression in '", listops_text(ids), "'");
    result = value;
  };
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    SPEAR_CHECK(id > kListOpsCls || (id == kListOpsCls && i == 0), "listops: unexpected ",
                listops_symbol(id), " at token ", i);
    if (id == kListOpsCls) continue;
    if (id < kListOpsMin) {
      deliver(id - kListOpsDigit0);
    } else if (id < kListOpsEnd) {
      open.push_back({id, {}});
    } else {
      SPEAR_CHECK(!open.empty(), "listops: ] without an operator at token ", i);
      const auto [op, args] = std::move(open.back());
      open.pop_back();
      deliver(apply(op, args));
    }
  }
  SPEAR_CHECK(open.empty() && result >= 0, "listops: '", listops_text(ids),
              open.empty() ? "' holds no expression" : "' lacks a closing ]");
  return result;
}

int64_t listops_longest(const ListOpsLimits& limits) {
  // An operator at every depth below max_depth, each with max_args arguments: L(max_depth) = 1,
  // L(d) = 2 + max_args * L(d + 1).
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t longest = 1;
  for (int64_t d = 1; d < limits.max_depth; ++d)
    longest = longest > (kMax - 2) / limits.max_args ? kMax : 2 + limits.max_args * longest;
  return longest;
}

std::vector<int64_t> sample_listops(Generator& gen, const ListOpsLimits& limits) {
  SPEAR_CHECK_T(ConfigError, limits.min_len <= listops_longest(limits), "config: task.min_len ",
                limits.min_len, " exceeds the longest ListOps expression task.max_depth ",
                limits.max_depth, " and task.max_args ", limits.max_args, " allow (",
                listops_longest(limits), " tokens)");
  // LRA accepts ~8% of its trees; a range that rare draws stays far below this bound.
  constexpr int64_t kMaxDraws = 1000000;
  Uniforms u(gen);
  std::vector<int64_t> tokens;
  for (int64_t draw = 0; draw < kMaxDraws; ++draw) {
    tokens.clear();
    if (grow(u, 1, limits, tokens) && static_cast<int64_t>(tokens.size()) >= limits.min_len)
      return tokens;
  }
  throw ConfigError(str_cat("config: no ListOps expression of ", limits.min_len, " to ",
                            limits.max_len, " tokens in ", kMaxDraws,
                            " draws; widen task.min_len .. task.max_len or raise task.max_depth"));
}

TaskSpec listops_task(const TaskConfig& config) {
  const ListOpsLimits limits{config.min_len, config.max_len, config.max_depth, config.max_args};
  TaskSpec spec;
  spec.name = "listops";
  spec.head = Head::classifier;
  spec.vocab_size = kListOpsVocab;
  spec.num_classes = 10;
  spec.pad_id = kListOpsPad;
  spec.max_input_len = config.max_len + 1;
  spec.unique = true;
  spec.sample = [limits](Generator& gen) {
    Example e;
    e.inputs = {kListOpsCls};
    const std::vector<int64_t> tokens = sample_listops(gen, limits);
    e.inputs.insert(e.inputs.end(), tokens.begin(), tokens.end());
    e.targets = {listops_value(tokens)};
    return e;
  };
  return spec;
}

}  // namespace spear::train
