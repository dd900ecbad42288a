#pragma once
#include "plan/budget.hpp"
