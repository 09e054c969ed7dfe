// The umbrella header: #include <spear.h> gives the whole public API.
#pragma once

#include "autograd/function.h"
#include "autograd/grad_mode.h"
#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/linear_attention.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "nn/transformer.h"
#include "spe/spe.h"
#include "tensor/parallel.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"
