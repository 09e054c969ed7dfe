// Weight initialisation, in place, drawing from a spear Generator (the default one when null).
// The formulas and the fan conventions are PyTorch's (torch.nn.init), so a freshly built spear
// layer has the same distribution of weights as its PyTorch twin.
#pragma once
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace spear::nn::init {

// fan_in and fan_out of a weight: (out, in, ...) -> in * receptive field, out * receptive field.
int64_t fan_in(const Tensor& w);
int64_t fan_out(const Tensor& w);

void uniform_(Tensor& t, double low, double high, Generator* gen = nullptr);
void normal_(Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
void zeros_(Tensor& t);
void ones_(Tensor& t);
// U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// N(0, s^2) with s = gain * sqrt(2 / (fan_in + fan_out)).
void xavier_normal_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// U(-b, b) with b = sqrt(3) * gain / sqrt(fan_in), gain = sqrt(2 / (1 + a^2)) (leaky ReLU slope
// a). PyTorch's Linear uses a = sqrt(5), which gives b = 1 / sqrt(fan_in).
void kaiming_uniform_(Tensor& t, double a = 0.0, Generator* gen = nullptr);
// N(0, s^2) with s = gain / sqrt(fan_in).
void kaiming_normal_(Tensor& t, double a = 0.0, Generator* gen = nullptr);

}  // namespace spear::nn::init
