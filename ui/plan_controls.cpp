#include "ui/plan_controls.hpp"

#include <algorithm>

#include <QCheckBox>
#include <QComboBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QRegularExpression>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QVBoxLayout>

#include "ui/device_style.hpp"
#include "ui/session_controller.hpp"

namespace devicemap::ui {
namespace {

std::vector<std::string> splitClasses(const QString& text) {
  std::vector<std::string> out;
  for (const auto& part : text.split(QRegularExpression(QStringLiteral("[,\\s]+")), Qt::SkipEmptyParts))
    out.push_back(part.toStdString());
  return out;
}

QString joinClasses(const std::vector<std::string>& classes) {
  QStringList out;
  for (const auto& c : classes) out << QString::fromStdString(c);
  return out.join(QStringLiteral(", "));
}

}  // namespace

PlanControls::PlanControls(SessionController* controller, QWidget* parent) : QWidget(parent), controller_(controller) {
  strategy_ = new QComboBox(this);
  strategy_->addItem(tr("auto (balanced)"), QStringLiteral("auto"));
  strategy_->addItem(tr("balanced"), QStringLiteral("balanced"));
  strategy_->addItem(tr("balanced_low_0"), QStringLiteral("balanced_low_0"));
  strategy_->addItem(tr("sequential"), QStringLiteral("sequential"));
  strategy_->setToolTip(tr("device_map=\"auto\" and \"balanced\" spread layers evenly over the GPUs; "
                           "\"balanced_low_0\" keeps GPU 0 light for generation; \"sequential\" fills GPU 0 first"));
  dtype_ = new QComboBox(this);
  dtype_->addItem(tr("as stored"), QString());
  for (const char* t : {"float32", "float16", "bfloat16"}) dtype_->addItem(QString::fromLatin1(t), QString::fromLatin1(t));
  // bitsandbytes on load: planned as transformers sizes it, drawn by the real quantized bytes.
  dtype_->addItem(tr("8-bit (bitsandbytes)"), QStringLiteral("bnb8"));
  dtype_->addItem(tr("4-bit NF4 (bitsandbytes)"), QStringLiteral("nf4"));
  dtype_->addItem(tr("4-bit FP4 (bitsandbytes)"), QStringLiteral("fp4"));
  dtype_->setToolTip(tr("torch_dtype the model is loaded in; sizes are counted in it. The bitsandbytes choices "
                        "plan as transformers does (load_in_8bit / load_in_4bit, float16) and show the real bytes"));
  flavor_ = new QComboBox(this);
  flavor_->addItem(tr("as transformers counts"), QStringLiteral("transformers"));
  flavor_->addItem(tr("as accelerate counts"), QStringLiteral("accelerate"));
  flavor_->setToolTip(tr("transformers casts first (every float tensor takes the dtype's size); accelerate's "
                         "infer_auto_device_map counts min(dtype, stored)"));
  context_ = new QSpinBox(this);
  context_->setRange(0, 1 << 21);
  context_->setSingleStep(1024);
  context_->setSpecialValueText(tr("off"));
  context_->setSuffix(tr(" tokens"));
  context_->setKeyboardTracking(false);
  context_->setToolTip(tr("Reserve room for the KV cache of this many tokens on each device that runs layers "
                          "(off: as Accelerate, no reserve)"));
  batch_ = new QSpinBox(this);
  batch_->setRange(1, 4096);
  batch_->setPrefix(tr("× "));
  batch_->setKeyboardTracking(false);
  batch_->setToolTip(tr("Sequences generated at once"));
  no_split_ = new QLineEdit(this);
  no_split_->setToolTip(tr("Module classes never split across devices (no_split_module_classes); empty: the model's own"));
  offload_buffers_ = new QCheckBox(tr("offload buffers"), this);
  offload_buffers_->setToolTip(tr("offload_buffers=True: buffers of offloaded layers are offloaded with them"));
  summary_ = new QLabel(this);
  summary_->setWordWrap(true);
  summary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  notes_ = new QLabel(this);
  notes_->setWordWrap(true);
  notes_->setEnabled(false);

  auto* form = new QFormLayout;
  form->addRow(tr("&Strategy"), strategy_);
  auto* dtype_row = new QHBoxLayout;
  dtype_row->addWidget(dtype_, 1);
  dtype_row->addWidget(flavor_, 1);
  form->addRow(tr("Dtype"), dtype_row);
  auto* kv_row = new QHBoxLayout;
  kv_row->addWidget(context_, 2);
  kv_row->addWidget(batch_, 1);
  form->addRow(tr("KV cache"), kv_row);
  form->addRow(tr("&No-split"), no_split_);
  form->addRow(QString(), offload_buffers_);
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(form);
  layout->addWidget(summary_);
  layout->addWidget(notes_);
  layout->addStretch(1);

  connect(strategy_, &QComboBox::activated, this, [this] { edited(tr("Strategy %1").arg(strategy_->currentData().toString())); });
  connect(dtype_, &QComboBox::activated, this, [this] { edited(tr("Dtype %1").arg(dtype_->currentText())); });
  connect(flavor_, &QComboBox::activated, this, [this] { edited(tr("Count dtype %1").arg(flavor_->currentText())); });
  connect(context_, &QSpinBox::valueChanged, this, [this] { edited(tr("KV context %1").arg(context_->value())); });
  connect(batch_, &QSpinBox::valueChanged, this, [this] { edited(tr("KV batch %1").arg(batch_->value())); });
  connect(no_split_, &QLineEdit::editingFinished, this, [this] {
    if (splitClasses(no_split_->text()) != controller_->session().no_split_classes()) edited(tr("No-split classes"));
  });
  connect(offload_buffers_, &QCheckBox::toggled, this, [this] { edited(tr("Offload buffers")); });
  refresh();
}

void PlanControls::edited(const QString& what) {
  const Session& s = controller_->session();
  PlanOptions o = s.options();
  o.strategy = strategy_from_name(strategy_->currentData().toString().toStdString()).value_or(Strategy::Auto);
  const QString dtype = dtype_->currentData().toString();
  o.quantization.reset();
  if (dtype == QLatin1String("bnb8") || dtype == QLatin1String("nf4") || dtype == QLatin1String("fp4")) {
    Quantization q;
    q.method = dtype == QLatin1String("bnb8") ? Quantization::Method::Bnb8 : Quantization::Method::Bnb4;
    q.quant_type = dtype == QLatin1String("fp4") ? "fp4" : "nf4";
    o.quantization = q;
    o.dtype.reset();
  } else {
    o.dtype = dtype.isEmpty() ? std::nullopt : dtype_from_torch_name(dtype.toStdString());
  }
  o.flavor = flavor_from_name(flavor_->currentData().toString().toStdString()).value_or(Flavor::Transformers);
  o.kv.context = static_cast<std::uint64_t>(context_->value());
  o.kv.batch = static_cast<std::uint64_t>(batch_->value());
  const auto classes = splitClasses(no_split_->text());
  if (classes == s.model().skeleton.no_split_module_classes)
    o.no_split_classes.reset();
  else
    o.no_split_classes = classes;
  o.offload_buffers = offload_buffers_->isChecked();
  controller_->setOptions(o, what);
}

void PlanControls::refresh() {
  const Session& s = controller_->session();
  const PlanOptions& o = s.options();
  {
    const QSignalBlocker b1(strategy_), b2(dtype_), b3(flavor_), b4(context_), b5(batch_), b6(no_split_), b7(offload_buffers_);
    strategy_->setCurrentIndex(strategy_->findData(QString::fromLatin1(strategy_name(o.strategy))));
    if (o.quantization)
      dtype_->setCurrentIndex(dtype_->findData(o.quantization->method == Quantization::Method::Bnb8 ? QStringLiteral("bnb8")
                                                                                                     : QString::fromStdString(o.quantization->quant_type)));
    else
      dtype_->setCurrentIndex(o.dtype ? dtype_->findData(QString::fromLatin1(torch_name(*o.dtype))) : 0);
    flavor_->setCurrentIndex(flavor_->findData(QString::fromLatin1(flavor_name(o.flavor))));
    context_->setValue(static_cast<int>(o.kv.context));
    batch_->setValue(static_cast<int>(std::max<std::uint64_t>(1, o.kv.batch)));
    if (!no_split_->hasFocus()) no_split_->setText(joinClasses(s.no_split_classes()));
    no_split_->setPlaceholderText(joinClasses(s.model().skeleton.no_split_module_classes));
    offload_buffers_->setChecked(o.offload_buffers);
  }
  summary_->setText(summary());
  const auto& plan = s.plan();
  QStringList notes;
  for (const auto& n : plan.notes) notes << QString::fromStdString(n);
  for (const auto& w : plan.warnings) notes << QString::fromStdString(w);
  notes_->setText(notes.join(QLatin1Char('\n')));
  notes_->setVisible(!notes.isEmpty());
}

QString PlanControls::summary() const {
  const Session& s = controller_->session();
  if (!s.has_model()) return tr("No model open");
  if (!s.plan_error().empty())
    return QStringLiteral("<span style='color:%1'><b>%2</b></span> %3")
        .arg(overColor().name(), tr("No plan:"), QString::fromStdString(s.plan_error()).toHtmlEscaped());
  const auto& plan = s.plan();
  QStringList parts;
  for (const auto& u : plan.devices) {
    if (u.needed() == 0 && !u.budget) continue;
    QString part = QStringLiteral("%1 %2").arg(deviceLabel(u.device), sizeText(u.needed()));
    if (u.shortfall() > 0)
      part = QStringLiteral("<span style='color:%1'>%2 (over by %3)</span>").arg(overColor().name(), part, sizeText(u.shortfall()));
    parts << part;
  }
  const QString head = plan.fits() ? tr("<b>Fits.</b>")
                                   : QStringLiteral("<b style='color:%1'>%2</b>").arg(overColor().name(), tr("Doesn't fit."));
  QString text = head + QLatin1Char(' ') + parts.join(QStringLiteral(" · "));
  const SpeedPrediction speed = s.predicted_speed();
  if (speed.known)
    text += QStringLiteral("<br>") + tr("Predicted decode: %1 (%2 without prefetch, as Accelerate)")
                                         .arg(QString::fromStdString(speed.summary()).toHtmlEscaped())
                                         .arg(speed.tokens_per_second_without_prefetch >= 100
                                                  ? QString::number(speed.tokens_per_second_without_prefetch, 'f', 0)
                                                  : QString::number(speed.tokens_per_second_without_prefetch, 'g', 3));
  else if (!speed.missing.empty())
    text += QStringLiteral("<br>") + tr("Predicted decode: %1").arg(QString::fromStdString(speed.summary()).toHtmlEscaped());
  // Where the disk plays a part, what its figure rests on.
  const bool disk = std::any_of(speed.parts.begin(), speed.parts.end(), [](const SpeedPart& p) { return p.resource == "disk"; }) ||
                    std::any_of(speed.missing.begin(), speed.missing.end(), [](const std::string& m) { return m == "bandwidth of disk"; });
  if (const QString note = controller_->diskNote(); disk && !note.isEmpty())
    text += QStringLiteral("<br><small>%1</small>").arg(note.toHtmlEscaped());
  return text;
}

}  // namespace devicemap::ui
