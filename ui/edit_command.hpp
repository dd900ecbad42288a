#pragma once
// One undo step: the session's state before and after an edit. Budget steps of one slider drag merge.
#include <QUndoCommand>

#include "session/session.hpp"

namespace devicemap::ui {

class SessionController;

class EditCommand : public QUndoCommand {
 public:
  static constexpr int kBudgetId = 1;

  // `applied`: the session already holds `after` (the first redo() does nothing).
  EditCommand(SessionController* controller, const QString& text, Session::State before, Session::State after,
              int mergeId, int gesture, int device);

  void undo() override;
  void redo() override;
  int id() const override { return merge_id_; }
  bool mergeWith(const QUndoCommand* other) override;

 private:
  SessionController* controller_;
  Session::State before_, after_;
  int merge_id_, gesture_, device_;
  bool first_ = true;
};

}  // namespace devicemap::ui
