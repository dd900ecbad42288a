#pragma once
// Precompiled header of the running layer. ATen alone (not <torch/torch.h>): the runtime needs tensors
// and their operators, not autograd modules, and ATen costs a fraction of the compile time.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/ScalarType.h>

#include <nlohmann/json.hpp>
