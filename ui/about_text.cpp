#include "ui/about_text.hpp"

#include <QCoreApplication>
#include <QtGlobal>

#include "devicemap_version.hpp"
#include "kernels/matvec.hpp"
#ifdef DEVICEMAP_HAVE_RUNTIME
#include "run/library_info.hpp"
#endif

namespace devicemap::ui {

QString aboutText() {
#ifdef DEVICEMAP_HAVE_RUNTIME
  const QString running = QString::fromStdString(running_library());
#else
  const QString running = QCoreApplication::translate("About", "not built (planning only)");
#endif
  return QCoreApplication::translate(
             "About",
             "<b>DeviceMap Studio</b> %1<p>Plans which layer of a language model goes to which GPU, the CPU's RAM or "
             "the disk — the same maps Accelerate's infer_auto_device_map makes — lets you change them by dragging, "
             "and exports device_map.json for transformers and accelerate.<p>Qt %2 · running layer: %3 · CPU "
             "kernels: %4 (Highway)<p>MIT License. The bundled demo model (stories260K) is MIT-licensed.")
      .arg(QStringLiteral(DEVICEMAP_VERSION), QString::fromLatin1(qVersion()), running,
           QString::fromStdString(kernels::dispatch_target()));
}

}  // namespace devicemap::ui
