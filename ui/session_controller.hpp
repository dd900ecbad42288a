#pragma once
// The one object the views talk to: it owns the Session (core, no Qt) and the undo stack, turns every
// edit into an undoable command, re-plans, and tells the views. Opening a model runs on a worker thread.
#include <QObject>
#include <QString>
#include <QUndoStack>

#include <cstdint>
#include <string>
#include <vector>

#include "session/session.hpp"
#include "ui/disk_speed.hpp"

namespace devicemap::ui {

class SessionController : public QObject {
  Q_OBJECT

 public:
  explicit SessionController(QObject* parent = nullptr);
  ~SessionController() override;

  const Session& session() const { return session_; }
  QUndoStack* undoStack() { return &undo_; }
  bool busy() const { return opening_; }

  // --- edits; each is one undo step ---------------------------------------------------------------
  // Slider drags pass the same `gesture` for every step of one drag: they merge into one undo step.
  void setBudget(Device d, std::uint64_t bytes, int gesture = -1);
  void setBudgets(const MaxMemory& budgets, const QString& what);  // all at once (the What if view)
  void pin(const std::vector<std::string>& names, Device d);
  void unpin(const std::vector<std::string>& names);
  void unpinAll();
  void setOptions(const PlanOptions& options, const QString& what);
  void setMachine(const Machine& machine, const QString& what);
  void addVirtualGpu(const QString& name, std::uint64_t bytes);
  void removeGpu(int index);
  // Throws devicemap::Error (nothing changes) when the map does not fit the model or machine.
  void importMap(const DeviceMap& map);

  // --- model and plan file (not undoable: they start over) -----------------------------------------
  // Opens on a worker thread; modelOpened() or openFailed() follows.
  void openModel(const QString& what);
  // Opens here and now; throws devicemap::Error.
  void openModelNow(const std::string& what);
  // Opens the plan file's model (worker thread) and then applies its settings.
  void openPlanFile(const QString& path);
  // Here and now; throws devicemap::Error.
  void openPlanFileNow(const std::string& path);
  void savePlanFile(const std::string& path) const;  // throws devicemap::Error

  // What the prediction's disk figure rests on (measuring, measured when and where, or why it could not
  // be): "" for a disk described by a profile.
  QString diskNote() const;

  // Starts a new gesture id for merging slider steps.
  int newGesture() { return ++gesture_; }

 Q_SIGNALS:
  void planChanged();      // after every change of model, machine, budgets, pins or options
  void machineChanged();   // the device list changed (rows of the devices panel)
  void modelChanged();     // a new model is open (undo history cleared)
  void opening(const QString& what);
  void openFailed(const QString& message);
  void planFileOpened(const QString& path);

 private:
  friend class EditCommand;
  void restore(const Session::State& state);
  // Records an edit already made to the session (from `before`) as an undo step.
  void commit(const QString& text, Session::State before, int mergeId = -1, int gesture = -1, int device = 0);
  void announce(bool machine);
  // A detected disk without a read speed takes the measured one, or has it measured (DiskSpeed).
  void useDiskFigure();

  Session session_;
  QUndoStack undo_;
  DiskSpeed* disk_;
  int gesture_ = 0;
  bool opening_ = false;
};

}  // namespace devicemap::ui
