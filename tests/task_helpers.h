// Shared by the task tests (test_tasks.cpp, test_fashion_mnist.cpp, test_eval.cpp): task configs
// from overrides, error messages, determinism.
#pragma once
#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "examples/train/tasks.h"
#include "train_helpers.h"

namespace spear::train::testing {

inline TaskConfig task_config(const std::vector<std::string>& overrides) {
  return config_from_json(with_overrides(Json::object(), overrides)).task;
}

// The message of what `fn` throws; "(no error)" when it does not.
inline std::string error_message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

inline bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Two tasks built from one config have the same examples in every split.
inline void check_deterministic(const TaskConfig& config) {
  const auto a = make_task(config), b = make_task(config);
  for (Split s : {Split::train, Split::val, Split::test}) {
    REQUIRE(a->examples(s).size() == b->examples(s).size());
    for (size_t i = 0; i < a->examples(s).size(); ++i) {
      CHECK(a->examples(s)[i].inputs == b->examples(s)[i].inputs);
      CHECK(a->examples(s)[i].targets == b->examples(s)[i].targets);
    }
  }
}

}  // namespace spear::train::testing
