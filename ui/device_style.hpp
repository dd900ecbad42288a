#pragma once
// How devices look and read in the program: "GPU 0", "CPU RAM", "Disk"; one colour per device, the same
// in the devices panel, the placement view and the layer table.
#include <QColor>
#include <QIcon>
#include <QString>

#include "plan/device.hpp"

namespace devicemap::ui {

QString deviceLabel(const Device& d);  // "GPU 0", "CPU", "Disk"
QColor deviceColor(const Device& d);   // fill for blocks of this device
QIcon deviceIcon(const Device& d);   // a swatch of deviceColor, for lists
QColor overColor();                    // over-committed devices and shortfalls

// Devices as one int for item data roles: GPU index ≥ 0, -1 CPU, -2 disk.
int deviceCode(const Device& d);
Device deviceFromCode(int code);

QString sizeText(std::int64_t bytes);  // "15.69 GiB" (format_size), "−1.20 GiB" for negatives

}  // namespace devicemap::ui
