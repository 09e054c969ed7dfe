// Element types. f32 trains, f64 makes gradient checks exact enough, i64 holds ids and labels.
#pragma once
#include <cstddef>
#include <cstdint>
#include <ostream>

namespace spear {

enum class DType : uint8_t { f32, f64, i64 };

inline constexpr DType f32 = DType::f32;
inline constexpr DType f64 = DType::f64;
inline constexpr DType i64 = DType::i64;

inline size_t itemsize(DType t) {
  return t == DType::f32 ? 4 : 8;
}
inline bool is_floating(DType t) {
  return t != DType::i64;
}
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "f32";
    case DType::f64:
      return "f64";
    case DType::i64:
      return "i64";
  }
  return "?";
}
inline std::ostream& operator<<(std::ostream& os, DType t) {
  return os << dtype_name(t);
}

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::i64;
}

}  // namespace spear

// One case of a dtype switch: the body runs with `scalar_t` bound to `type`.
#define SPEAR_DISPATCH_CASE(enum_value, type, ...) \
  case ::spear::DType::enum_value: {               \
    using scalar_t = type;                         \
    return __VA_ARGS__();                          \
  }

// Runs the body with `scalar_t` bound to the C++ type of `dtype`; other dtypes throw naming `op`.
#define SPEAR_DISPATCH_FLOAT(dtype, op, ...)                                              \
  [&] {                                                                                   \
    switch (dtype) {                                                                      \
      SPEAR_DISPATCH_CASE(f32, float, __VA_ARGS__)                                        \
      SPEAR_DISPATCH_CASE(f64, double, __VA_ARGS__)                                       \
      default:                                                                            \
        throw ::spear::DTypeError(std::string(op) + ": expected a floating dtype, got " + \
                                  ::spear::dtype_name(dtype));                            \
    }                                                                                     \
  }()

// The same over every dtype, i64 included.
#define SPEAR_DISPATCH_ALL(dtype, op, ...)                          \
  [&] {                                                             \
    switch (dtype) {                                                \
      SPEAR_DISPATCH_CASE(f32, float, __VA_ARGS__)                  \
      SPEAR_DISPATCH_CASE(f64, double, __VA_ARGS__)                 \
      SPEAR_DISPATCH_CASE(i64, int64_t, __VA_ARGS__)                \
    }                                                               \
    throw ::spear::DTypeError(std::string(op) + ": unknown dtype"); \
  }()
