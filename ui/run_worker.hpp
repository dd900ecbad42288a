#pragma once
// The running layer on a worker thread: loads a checkpoint by a device map (progress, cancel) and
// generates from a prompt, streaming text. Its slots run on the thread it lives on; it reports through
// signals. Built only with the running layer; it includes no LibTorch header.
#include <QObject>
#include <QString>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "format/dtype.hpp"
#include "run/load_options.hpp"
#include "plan/device_map.hpp"

namespace devicemap {
class Model;
class Tokenizer;
}  // namespace devicemap

namespace devicemap::ui {

struct Sampling {
  bool do_sample = false;
  double temperature = 1.0;
  int top_k = 0;
  double top_p = 1.0;
  double repetition_penalty = 1.0;
  int max_new_tokens = 128;
  quint64 seed = 0;
};

class RunWorker : public QObject {
  Q_OBJECT

 public:
  RunWorker();
  ~RunWorker() override;

  // Set from the UI thread: stops a load at the next tensor, a generation at the next block.
  std::atomic<bool>& cancelFlag() { return cancel_; }

  // Both run on the worker's thread (call through QMetaObject::invokeMethod).
  // `quantize`: the plan's bitsandbytes choice for a float checkpoint, applied on load (a checkpoint
  // quantized already runs as stored).
  void load(const QString& folder, const DeviceMap& map, std::optional<DType> dtype, LoadQuantization quantize = LoadQuantization::None);
  void generate(const QString& prompt, const Sampling& sampling);
  void unload();

 Q_SIGNALS:
  void progress(int percent, const QString& tensor);
  void loaded(const QString& summary, const devicemap::ui::Sampling& defaults);
  void loadFailed(const QString& message, bool cancelled);
  void text(const QString& piece, int tokens, double seconds);  // tokens and seconds since the first
  void finished(const QString& summary);
  void generateFailed(const QString& message);

 private:
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::atomic<bool> cancel_{false};
};

}  // namespace devicemap::ui
