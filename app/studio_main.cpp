// devicemap-studio: the desktop program. Optional argument: a model (folder, "catalog:ID") or a plan file.
#include <QApplication>
#include <QCommandLineParser>
#include <QIcon>

#include <cstdio>

#include "devicemap_version.hpp"
#include "ui/main_window.hpp"

int main(int argc, char** argv) {
  // Sharp on fractional scale factors (150 %, 175 %) instead of rounding them.
  QApplication::setHighDpiScaleFactorRoundingPolicy(Qt::HighDpiScaleFactorRoundingPolicy::PassThrough);
  QApplication app(argc, argv);
  QApplication::setOrganizationName(QStringLiteral("DeviceMap"));
  QApplication::setApplicationName(QStringLiteral("DeviceMap Studio"));
  QApplication::setApplicationVersion(QStringLiteral(DEVICEMAP_VERSION));
  // The installed desktop entry and icon (packaging/linux/): the window takes the icon of the theme.
  QApplication::setDesktopFileName(QStringLiteral("io.github.devicemap_studio.Studio"));
  QApplication::setWindowIcon(QIcon::fromTheme(QStringLiteral("io.github.devicemap_studio.Studio")));

  QCommandLineParser args;
  args.setApplicationDescription(QStringLiteral("Plan, draw and export device maps for models that do not fit on one GPU"));
  args.addHelpOption();
  args.addVersionOption();
  args.addPositionalArgument(QStringLiteral("model"),
                             QStringLiteral("A model folder, a Hugging Face cache folder, catalog:ID, or a .plan.json file"));
  const QCommandLineOption run(QStringLiteral("run"),
                               QStringLiteral("Load the model on this machine and generate from PROMPT"), QStringLiteral("PROMPT"));
  args.addOption(run);
  const QCommandLineOption what_if(QStringLiteral("what-if"),
                                   QStringLiteral("Show the What if plot against AXIS: budget, context or gpus"), QStringLiteral("AXIS"));
  args.addOption(what_if);
  args.process(app);
  const QString axis = args.value(what_if);
  if (args.isSet(what_if) && axis != QLatin1String("budget") && axis != QLatin1String("context") && axis != QLatin1String("gpus")) {
    std::fprintf(stderr, "devicemap-studio: --what-if takes budget, context or gpus, not \"%s\"\n", qPrintable(axis));
    return 2;
  }

  devicemap::ui::MainWindow window;
  window.show();
  window.startup(args.positionalArguments().value(0));
  if (args.isSet(run)) window.runPrompt(args.value(run));
  if (args.isSet(what_if))
    window.showWhatIf(axis == QLatin1String("budget")    ? devicemap::WhatIfAxis::GpuBudget
                      : axis == QLatin1String("context") ? devicemap::WhatIfAxis::Context
                                                         : devicemap::WhatIfAxis::GpuCount);
  return QApplication::exec();
}
