// The public, differentiable API placeholder (filled below).
#pragma once
#include "tensor/tensor.h"
