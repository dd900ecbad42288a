#include "ui/run_worker.hpp"

#include <QElapsedTimer>

#include <exception>
#include <vector>

#include "error.hpp"
#include "format/checkpoint.hpp"
#include "plan/process_memory.hpp"
#include "plan/units.hpp"
#include "run/generator.hpp"
#include "run/model.hpp"
#include "text/tokenizer.hpp"

namespace devicemap::ui {

RunWorker::RunWorker() = default;
RunWorker::~RunWorker() = default;

void RunWorker::unload() {
  model_.reset();
  tokenizer_.reset();
}

void RunWorker::load(const QString& folder, const DeviceMap& map, std::optional<DType> dtype, LoadQuantization quantize) {
  unload();
  // cancel_ is cleared by the UI when it queues the work: a Cancel pressed while the work waited in the
  // queue must still count.
  try {
    LoadOptions options;
    options.dtype = dtype;
    const auto path = std::filesystem::path(folder.toStdString());
    if (quantize != LoadQuantization::None && !Checkpoint::open(path).config().contains("quantization_config")) options.quantize = quantize;
    int last = -1;
    options.on_progress = [&](const LoadProgress& p) {
      const int percent = p.bytes_total ? static_cast<int>(100.0 * static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total))
                                        : (p.tensors_total ? static_cast<int>(100 * p.tensors_done / p.tensors_total) : 0);
      if (percent != last) {
        last = percent;
        Q_EMIT progress(percent, QString::fromUtf8(p.tensor.data(), static_cast<qsizetype>(p.tensor.size())));
      }
      return !cancel_.load();
    };
    auto tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(resolve_model_folder(path)));
    auto model = std::make_unique<Model>(Model::load(path, map, options));
    model->set_cancel_flag(&cancel_);
    const LoadReport& r = model->load_report();
    QString summary = tr("Loaded %n tensor(s) in %1 s, computing in %2 on %3", nullptr, static_cast<int>(r.tensors))
                          .arg(r.seconds, 0, 'f', 2)
                          .arg(QString::fromLatin1(torch_name(r.cpu_dtype)), QString::fromStdString(r.main_device));
    QStringList per_device;
    for (const auto& [device, bytes] : r.bytes_by_device)
      per_device << QStringLiteral("%1 %2").arg(QString::fromStdString(device), QString::fromStdString(format_size(bytes)));
    if (!per_device.isEmpty()) summary += QStringLiteral(" · ") + per_device.join(QStringLiteral(", "));
    if (r.aliased_bytes) summary += tr(" · %1 read straight from the file").arg(QString::fromStdString(format_size(r.aliased_bytes)));
    if (options.quantize != LoadQuantization::None)
      summary += tr(" · block Linears quantized on load to %1").arg(options.quantize == LoadQuantization::Int8 ? QStringLiteral("int8") : QStringLiteral("nf4"));
    if (r.packed_linears)
      summary += tr(" · %n Linear(s) read packed (%1)", nullptr, static_cast<int>(r.packed_linears)).arg(QString::fromStdString(format_size(r.packed_bytes)));
    for (const auto& note : r.notes) summary += QLatin1Char('\n') + QString::fromStdString(note);
    const GenerationOptions& g = model->generation_defaults();
    Sampling defaults;
    defaults.do_sample = g.sampling.do_sample;
    defaults.temperature = g.sampling.temperature;
    defaults.top_k = static_cast<int>(g.sampling.top_k);
    defaults.top_p = g.sampling.top_p;
    defaults.repetition_penalty = g.sampling.repetition_penalty;
    defaults.max_new_tokens = static_cast<int>(g.max_new_tokens);
    model_ = std::move(model);
    tokenizer_ = std::move(tokenizer);
    Q_EMIT loaded(summary, defaults);
  } catch (const Cancelled& e) {
    Q_EMIT loadFailed(QString::fromUtf8(e.what()), true);
  } catch (const std::exception& e) {
    Q_EMIT loadFailed(QString::fromStdString(printable(e.what())), false);
  }
}

void RunWorker::generate(const QString& prompt, const Sampling& sampling) {
  if (!model_ || !tokenizer_) {
    Q_EMIT generateFailed(tr("Load the model first"));
    return;
  }
  try {
    GenerationOptions options = model_->generation_defaults();
    options.sampling.do_sample = sampling.do_sample;
    options.sampling.temperature = sampling.temperature;
    options.sampling.top_k = sampling.top_k;
    options.sampling.top_p = sampling.top_p;
    options.sampling.repetition_penalty = sampling.repetition_penalty;
    options.sampling.seed = sampling.seed;
    options.max_new_tokens = sampling.max_new_tokens;
    validate(options);
    const std::vector<int> ids = tokenizer_->encode(prompt.toStdString());
    const std::vector<std::int64_t> prompt_ids(ids.begin(), ids.end());
    StreamDecoder decoder(*tokenizer_, true);
    QElapsedTimer clock;
    int count = 0;
    const GenerationResult result = devicemap::generate(*model_, prompt_ids, options, [&](std::int64_t id) {
      if (count++ == 0) clock.start();
      const std::string piece = decoder.push(static_cast<int>(id));
      if (!piece.empty()) Q_EMIT text(QString::fromStdString(piece), count, static_cast<double>(clock.nsecsElapsed()) / 1e9);
      return !cancel_.load();
    });
    const QString tail = QString::fromStdString(decoder.flush());
    if (!tail.isEmpty()) Q_EMIT text(tail, count, clock.isValid() ? static_cast<double>(clock.nsecsElapsed()) / 1e9 : 0.0);
    const auto& st = result.stats;
    QString why;
    switch (result.stop) {
      case StopReason::EndOfSequence: why = tr("end of text"); break;
      case StopReason::MaxNewTokens: why = tr("token limit"); break;
      case StopReason::ContextFull: why = tr("context full"); break;
      case StopReason::Cancelled: why = tr("stopped"); break;
    }
    Q_EMIT finished(tr("%1 new tokens (%2) · prompt %3 tokens at %4 tok/s · generation %5 tok/s · RAM peak %6")
                        .arg(st.new_tokens)
                        .arg(why)
                        .arg(st.prompt_tokens)
                        .arg(st.prefill_tokens_per_second(), 0, 'f', 1)
                        .arg(st.decode_tokens_per_second(), 0, 'f', 1)
                        .arg(QString::fromStdString(format_size(peak_resident_bytes()))));
  } catch (const std::exception& e) {
    Q_EMIT generateFailed(QString::fromStdString(printable(e.what())));
  }
}

}  // namespace devicemap::ui
