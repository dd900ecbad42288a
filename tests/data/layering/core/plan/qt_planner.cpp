#include "plan/qt_planner.hpp"
#include <QString>
