#include "ui/edit_command.hpp"

#include "ui/session_controller.hpp"

namespace devicemap::ui {

EditCommand::EditCommand(SessionController* controller, const QString& text, Session::State before,
                         Session::State after, int mergeId, int gesture, int device)
    : QUndoCommand(text),
      controller_(controller),
      before_(std::move(before)),
      after_(std::move(after)),
      merge_id_(mergeId),
      gesture_(gesture),
      device_(device) {}

void EditCommand::undo() { controller_->restore(before_); }

void EditCommand::redo() {
  if (first_) {
    first_ = false;  // the edit was made before the command was pushed
    return;
  }
  controller_->restore(after_);
}

bool EditCommand::mergeWith(const QUndoCommand* other) {
  const auto* o = dynamic_cast<const EditCommand*>(other);
  if (!o || o->merge_id_ != merge_id_ || o->gesture_ < 0 || o->gesture_ != gesture_ || o->device_ != device_) return false;
  after_ = o->after_;
  return true;
}

}  // namespace devicemap::ui
