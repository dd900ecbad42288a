#pragma once
#include "run/tensor_thing.hpp"
