// Exceptions. Every message names the op and the shapes involved, so the user can find the bug
// without a debugger: "matmul: inner dims differ: [4, 11] @ [256, 256]".
#pragma once
#include <cstdint>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace spear {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ShapeError : Error {
  using Error::Error;
};
struct DTypeError : Error {
  using Error::Error;
};
struct IOError : Error {
  using Error::Error;
};
struct ConfigError : Error {
  using Error::Error;
};
struct AutogradError : Error {
  using Error::Error;
};

// Shapes print as [2, 3] in messages. Declared here, before str_cat, so str_cat finds it.
inline std::ostream& operator<<(std::ostream& os, const std::vector<int64_t>& shape) {
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  return os << ']';
}

template <typename... Parts>
std::string str_cat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

}  // namespace spear

// Throws ErrorType with the message parts streamed together when `cond` is false.
#define SPEAR_CHECK_T(ErrorType, cond, ...)                      \
  do {                                                           \
    if (!(cond)) throw ErrorType(::spear::str_cat(__VA_ARGS__)); \
  } while (0)
#define SPEAR_CHECK(cond, ...) SPEAR_CHECK_T(::spear::Error, cond, __VA_ARGS__)
#define SPEAR_CHECK_SHAPE(cond, ...) SPEAR_CHECK_T(::spear::ShapeError, cond, __VA_ARGS__)
#define SPEAR_CHECK_DTYPE(cond, ...) SPEAR_CHECK_T(::spear::DTypeError, cond, __VA_ARGS__)
