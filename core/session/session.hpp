#pragma once
// One planning session, as the desktop program edits it: a model, the machine it is planned for
// (detected or simulated), a budget per device, the user's pins and plan options — and the Plan they
// give, recomputed after every change. Also the plan file, a versioned JSON project file that records
// all of that (the device map itself goes to device_map.json, which must stay free of extra keys).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model_source.hpp"
#include "model/module_sizes.hpp"
#include "plan/budget.hpp"
#include "plan/device_map.hpp"
#include "plan/machine.hpp"
#include "plan/planner.hpp"
#include "plan/speed_model.hpp"

namespace devicemap {

// One block of the placement picture: an embedding, a decoder layer, a norm, a head — or the sub-modules
// and tensors of a layer the walk had to split. Keys of the plan's raw map above the layers ("model")
// are shown as their parts.
struct PlacedUnit {
  std::string name;          // "model.layers.12", "lm_head"
  std::string cls;           // module class ("LlamaDecoderLayer"), or "parameter" / "buffer"
  std::int64_t bytes = 0;    // as the plan counts them (target dtype, tied bytes once; quantized: the real bytes)
  DType dtype = DType::F32;  // stored dtype of most of its bytes
  Device device;
  bool tensor = false;
  bool pinned = false;       // a user pin covers it
  std::string follows;       // the pin it follows because of a tied weight; "" when none
  int order = 0;             // position in the model's registration order
};

// What importing a device map found wrong: the map's own problems for this model, and devices it
// names that the session has no budget for.
struct ImportCheck {
  MapProblems problems;
  std::vector<Device> unknown_devices;
  bool ok() const { return problems.ok() && unknown_devices.empty(); }
  std::string message() const;
};

// The plan file: everything needed to recompute a plan, nothing derived from it.
struct PlanFile {
  static constexpr int kVersion = 1;

  std::string model;                      // what open_model() takes: a folder, "catalog:ID", a skeleton file
  std::optional<nlohmann::json> profile;  // the simulated machine as a hardware profile; none = detect
  MaxMemory budgets;
  PlanOptions options;                    // pins included

  nlohmann::ordered_json to_json() const;
  // Throws devicemap::Error naming `source` and the key that is missing or wrong.
  static PlanFile from_json(const nlohmann::json& j, std::string_view source);
  static PlanFile load(const std::filesystem::path& path);
  void save(const std::filesystem::path& path) const;  // atomic
};

class Session {
 public:
  // What an edit changes, and what undo puts back: everything but the model.
  struct State {
    Machine machine;
    MaxMemory budgets;
    PlanOptions options;  // pins included
  };

  Session() = default;

  // --- model -------------------------------------------------------------------------------------
  // Opens `what` (see open_model) and makes it the session's model. Pins are dropped and the no-split
  // classes reset to the model's own. Throws devicemap::Error and leaves the session as it was.
  void open_model(std::string_view what);
  // Same, with a model opened elsewhere (a worker thread).
  void set_model(ModelSource source, std::string ref);
  bool has_model() const { return has_model_; }
  const ModelSource& model() const { return model_; }
  const std::string& model_ref() const { return model_ref_; }  // what open_model() was given

  // --- machine and budgets -------------------------------------------------------------------------
  // Plans for `m` from now on: budgets become default_max_memory(m); pins on devices `m` lacks go.
  void set_machine(Machine m);
  const Machine& machine() const { return state_.machine; }
  // Simulated GPUs: appended after the last one, or removed (later GPUs move down one index, and their
  // budgets and pins with them).
  void add_virtual_gpu(std::string name, std::uint64_t bytes);
  void remove_gpu(int index);

  const MaxMemory& budgets() const { return state_.budgets; }
  void set_budget(Device d, std::uint64_t bytes);
  void set_budgets(MaxMemory budgets);

  // --- pins ---------------------------------------------------------------------------------------
  const std::vector<Pin>& pins() const { return state_.options.pins; }
  // Pins each name to `d`, replacing pins on the same names or below them.
  void pin(const std::vector<std::string>& names, Device d);
  // Removes pins on these names or below them.
  void unpin(const std::vector<std::string>& names);
  void unpin_all();
  bool is_pinned(std::string_view name) const;

  // --- options (pins are kept as they are) ---------------------------------------------------------
  const PlanOptions& options() const { return state_.options; }
  void set_options(PlanOptions options);
  // The no-split classes in effect: the options' or the model's.
  const std::vector<std::string>& no_split_classes() const;

  // --- state, for undo -----------------------------------------------------------------------------
  const State& state() const { return state_; }
  void restore(State s);

  // --- the plan ------------------------------------------------------------------------------------
  // The plan of the current state. When the planner refused (an impossible pin, a KV reserve without a
  // config), plan() is empty and plan_error() says why.
  const Plan& plan() const { return plan_; }
  const std::string& plan_error() const { return plan_error_; }
  // The raw map's keys as blocks, in the model's registration order.
  const std::vector<PlacedUnit>& units() const { return units_; }
  const DeviceUsage* usage(Device d) const;
  // Re-plans now (every setter does this already).
  void replan();
  // Predicted decode speed of the plan on the session's machine (speed_model.hpp).
  SpeedPrediction predicted_speed() const;

  // --- files ---------------------------------------------------------------------------------------
  PlanFile plan_file() const;
  // Applies a plan file's settings to an open model on machine `m`. Throws devicemap::Error (and
  // leaves the session as it was) when a pin names nothing in the model.
  void apply(const PlanFile& file, Machine m);

  // Checks a device map made elsewhere against the model and the budgets.
  ImportCheck check_import(const DeviceMap& map) const;
  // Makes `map` the plan by pinning each of its keys. Throws devicemap::Error with check_import's
  // message when the map does not fit this model or machine.
  void import_map(const DeviceMap& map);

 private:
  void reset_for_model();
  void compute_units();

  ModelSource model_;
  std::string model_ref_;
  bool has_model_ = false;
  std::unordered_map<std::string, int> order_;  // module and tensor names → registration order
  std::vector<char> module_has_tensors_, layers_below_;
  std::vector<DType> module_dtype_;
  State state_;
  ModuleSizes sizes_;
  Plan plan_;
  std::string plan_error_;
  std::vector<PlacedUnit> units_;
};

// The machine to start with: this one when it has a GPU; otherwise the bundled 1×24 GB profile with this
// machine's CPU and disk (planning for a GPU is the point), with `why` saying so.
Machine startup_machine(std::string& why);

}  // namespace devicemap
