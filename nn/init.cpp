#include "nn/init.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"

namespace spear::nn::init {
namespace {

// Overwrites t's values (a parameter is a leaf, so this is not recorded).
void assign(Tensor& t, const Tensor& values) {
  NoGradGuard no_grad;
  t.copy_(values);
}

double kaiming_gain(double a) {
  return std::sqrt(2.0 / (1.0 + a * a));
}

}  // namespace

int64_t fan_in(const Tensor& w) {
  SPEAR_CHECK_SHAPE(w.dim() >= 2, "init: fan in/out need a weight of 2 or more dims, got ",
                    w.shape());
  return w.numel() / w.size(0);
}

int64_t fan_out(const Tensor& w) {
  SPEAR_CHECK_SHAPE(w.dim() >= 2, "init: fan in/out need a weight of 2 or more dims, got ",
                    w.shape());
  return w.numel() / w.size(1);
}

void uniform_(Tensor& t, double low, double high, Generator* gen) {
  Tensor u = rand(t.shape(), f64, gen);
  assign(t, u * (high - low) + low);
}

void normal_(Tensor& t, double mean, double std, Generator* gen) {
  Tensor n = randn(t.shape(), f64, gen);
  assign(t, n * std + mean);
}

void zeros_(Tensor& t) {
  assign(t, zeros({}, t.dtype()));
}
void ones_(Tensor& t) {
  assign(t, ones({}, t.dtype()));
}

void xavier_uniform_(Tensor& t, double gain, Generator* gen) {
  double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in(t) + fan_out(t)));
  uniform_(t, -bound, bound, gen);
}

void xavier_normal_(Tensor& t, double gain, Generator* gen) {
  normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in(t) + fan_out(t))), gen);
}

void kaiming_uniform_(Tensor& t, double a, Generator* gen) {
  double bound = std::sqrt(3.0) * kaiming_gain(a) / std::sqrt(static_cast<double>(fan_in(t)));
  uniform_(t, -bound, bound, gen);
}

void kaiming_normal_(Tensor& t, double a, Generator* gen) {
  normal_(t, 0.0, kaiming_gain(a) / std::sqrt(static_cast<double>(fan_in(t))), gen);
}

}  // namespace spear::nn::init
