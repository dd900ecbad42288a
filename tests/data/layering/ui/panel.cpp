#include "ui/panel.hpp"
#include "run/clean.hpp"
#include "run/public_face.hpp"
#include "cli/args.hpp"
#include <torch/torch.h>
#include <QWidget>
#include "panel.moc"
