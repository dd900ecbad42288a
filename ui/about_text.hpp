#pragma once
// The About box's text: what the program does, its version (from CMake) and what it runs on here.
#include <QString>

namespace devicemap::ui {

QString aboutText();

}  // namespace devicemap::ui
