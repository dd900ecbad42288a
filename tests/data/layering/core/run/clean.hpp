#pragma once
#include "error.hpp"
