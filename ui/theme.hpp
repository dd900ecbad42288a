#pragma once
// Light and dark palettes (Fusion style), or the platform's own.
#include <QString>

class QApplication;

namespace devicemap::ui {

enum class Theme { System, Light, Dark };

void applyTheme(Theme theme);
Theme themeFromName(const QString& name);  // "system", "light", "dark"
QString themeName(Theme theme);
bool isDark();  // whether the current palette has a dark window colour

}  // namespace devicemap::ui
