// devicemap run MODEL_DIR [--device-map FILE | planning flags] [--prompt TEXT | --prompt-ids IDS] [generation flags]
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS  // built with the running layer only
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "cli/plan_flags.hpp"
#include "cli/progress_bar.hpp"
#include "cli/run_cluster.hpp"
#include "error.hpp"
#include "format/checkpoint.hpp"
#include "model/model_source.hpp"
#include "model/quantization.hpp"
#include "plan/device_map.hpp"
#include "plan/process_memory.hpp"
#include "plan/units.hpp"
#include "run/generator.hpp"
#include "run/model.hpp"
#include "run/pipeline.hpp"
#include "text/tokenizer.hpp"

namespace devicemap::cli {
namespace {

const char* const kUsage =
    "usage: devicemap run MODEL_DIR [options]\n"
    "Loads the model by a device map (a file, or planned here as `devicemap plan` would) and generates.\n"
    "The prompt is --prompt, --prompt-ids, or standard input; the new text streams to standard output.\n\n"
    "  --device-map FILE                        device_map.json to load by (default: plan with the flags below)\n"
    "  --prompt TEXT                            prompt text (tokenized with the model's tokenizer, BOS added)\n"
    "  --prompt-ids 1,403,407                   prompt token ids, comma- or space-separated (no tokenizer needed)\n"
    "  --max-new-tokens N                       (default: generation_config.json's, else 128)\n"
    "  --greedy | --sample                      pick the most likely token, or sample (default: generation_config.json)\n"
    "  --temperature T --top-k K --top-p P      sampling settings (a temperature above 0 implies --sample)\n"
    "  --repetition-penalty R --seed S\n"
    "  --output text|ids                        ids: the whole sequence, prompt included, space-separated\n"
    "  --format text|json                       json: one object with ids, text, stop reason and speeds\n"
    "  --stats                                  load and speed figures on standard error\n"
    "  --no-prefetch                            fetch offloaded blocks only when they run\n"
    "  --prefill-chunk N                        a longer prompt runs N tokens at a time (default 512)\n"
    "  --quantize int8|nf4                      quantize a float checkpoint's block Linears on \"cpu\" as they\n"
    "                                           load (LLM.int8 rows, or NF4 in blocks of 64), so that a model\n"
    "                                           too big at 16 bits runs; planned at that size\n"
    "  --map-weights                            run CPU weights from the file mapping instead of copying them\n"
    "                                           into huge pages (instant load; slower decode: small pages)\n"
    "  --no-memory-check                        load even when a device seems too small\n"
    "planning (without --device-map); --dtype and --offload-folder also apply to loading:\n";

std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted.store(true); }

std::vector<std::int64_t> parse_ids(const std::string& text) {
  std::vector<std::int64_t> ids;
  std::string spaced = text;
  std::replace(spaced.begin(), spaced.end(), ',', ' ');
  std::istringstream in(spaced);
  for (std::string word; in >> word;) {
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), v);
    if (ec != std::errc() || end != word.data() + word.size() || v < 0)
      throw Error("--prompt-ids: '" + word + "' is not a token id");
    ids.push_back(v);
  }
  if (ids.empty()) throw Error("--prompt-ids: no ids");
  return ids;
}

GenerationOptions generation_options(const Args& args, GenerationOptions o) {
  o.max_new_tokens = static_cast<std::int64_t>(args.get_u64("max-new-tokens", static_cast<std::uint64_t>(o.max_new_tokens)));
  auto& s = o.sampling;
  if (args.get("temperature")) {
    s.temperature = args.get_double("temperature", s.temperature);
    s.do_sample = s.temperature > 0;
  }
  s.top_k = static_cast<std::int64_t>(args.get_u64("top-k", static_cast<std::uint64_t>(s.top_k)));
  s.top_p = args.get_double("top-p", s.top_p);
  s.repetition_penalty = args.get_double("repetition-penalty", s.repetition_penalty);
  s.seed = args.get_u64("seed", s.seed);
  if (args.flag("greedy") && args.flag("sample")) throw Error("--greedy and --sample exclude each other");
  if (args.flag("greedy")) s.do_sample = false;
  if (args.flag("sample")) s.do_sample = true;
  validate(o);
  return o;
}

std::string stop_name(StopReason r) {
  switch (r) {
    case StopReason::EndOfSequence: return "eos";
    case StopReason::MaxNewTokens: return "max_new_tokens";
    case StopReason::ContextFull: return "context_full";
    case StopReason::Cancelled: return "cancelled";
  }
  return "?";
}

void print_load(std::ostream& err, const LoadReport& r) {
  err << "loaded in " << r.seconds << " s: " << r.tensors << " tensors";
  for (const auto& [device, bytes] : r.bytes_by_device) err << ", " << format_size(bytes) << " on " << device;
  err << "; " << format_size(r.aliased_bytes) << " served from the files' mappings; compute " << torch_name(r.cpu_dtype)
      << " on the CPU";
  if (r.main_device != "cpu") err << ", " << torch_name(r.gpu_dtype) << " on GPUs (main " << r.main_device << ")";
  if (r.offloaded_bytes > 0) err << "; " << format_size(r.offloaded_bytes) << " cast into the offload folder";
  if (r.reused_offload_bytes > 0) err << "; " << format_size(r.reused_offload_bytes) << " reused from the offload folder";
  if (r.foreign_offload_ram_bytes > 0)
    err << "; " << format_size(r.foreign_offload_ram_bytes)
        << " of \"disk\" tensors held in RAM, cast from or missing in an offload folder another program wrote (it is never changed)";
  if (r.packed_linears > 0)
    err << "; " << r.packed_linears << " quantized Linears read packed by the decode kernels (" << format_size(r.packed_bytes)
        << " with their scales)";
  err << "\n";
  for (const auto& n : r.notes) err << "note: " << n << "\n";
}

}  // namespace

int run_command(Invocation& inv) {
  auto options = planning_options();
  options.insert({"device-map", "prompt", "prompt-ids", "max-new-tokens", "temperature", "top-k", "top-p",
                  "repetition-penalty", "seed", "format", "output", "quantize", "prefill-chunk"});
  auto flags = planning_flags();
  flags.insert({"help", "greedy", "sample", "stats", "no-prefetch", "no-memory-check", "map-weights"});
  add_cluster_run_options(options, flags);
  const Args args(inv.args, options, flags);
  if (args.flag("help")) {
    inv.out << kUsage << kPlanningHelp << kClusterRunHelp;
    return 0;
  }
  if (args.positionals().size() != 1) throw Error("run takes one model folder; see --help");
  const std::string format = args.get("format").value_or("text");
  if (format != "text" && format != "json") throw Error("--format: '" + format + "' is not text or json");
  const bool stats = args.flag("stats");
  const std::string output = args.get("output").value_or("text");
  if (output != "text" && output != "ids") throw Error("--output: '" + output + "' is not text or ids");

  LoadQuantization quantize = LoadQuantization::None;
  if (auto q = args.get("quantize")) {
    if (*q == "int8")
      quantize = LoadQuantization::Int8;
    else if (*q == "nf4")
      quantize = LoadQuantization::Nf4;
    else
      throw Error("--quantize: '" + *q + "' is not int8 or nf4");
  }
  const Checkpoint checkpoint = Checkpoint::open(args.positionals()[0]);
  // The runtime reads config.json before anything is planned: a type that only plans, or a bad key, is
  // named first.
  (void)ModelConfig::from_json(checkpoint.config(), (checkpoint.dir() / "config.json").string());
  DeviceMap map;
  std::optional<ClusterRank> cluster;  // this process's stage of a pipeline across hosts
  if (args.get("cluster")) {
    cluster = cluster_rank(args, skeleton_from_checkpoint(checkpoint));
    map = cluster->map;
    if (stats)
      inv.err << "rank " << cluster->pipeline.rank << " of " << cluster->ranks << " (host " << cluster->host << "): layers "
              << cluster->layers.first << " to " << cluster->layers.end - 1 << "; device map: " << map.to_json().dump() << "\n";
  } else if (auto file = args.get("device-map")) {
    map = DeviceMap::load(*file);
  } else {
    const Skeleton skeleton = skeleton_from_checkpoint(checkpoint);
    PlanningRequest req = read_planning_flags(args, skeleton);
    if (quantize != LoadQuantization::None && !req.options.quantization) {  // planned at the size it will load as
      Quantization q;
      q.method = quantize == LoadQuantization::Int8 ? Quantization::Method::Bnb8 : Quantization::Method::Bnb4;
      req.options.quantization = q;
    }
    const Plan plan = plan_device_map(skeleton, req.max_memory, req.options);
    if (!plan.fits()) inv.err << "warning: the planned map does not fit the budgets; loading may fail\n";
    map = plan.device_map;
    if (stats) inv.err << "device map: " << map.to_json().dump() << "\n";
  }

  LoadOptions load;
  if (auto d = args.get("dtype")) {
    load.dtype = dtype_from_torch_name(*d);
    if (!load.dtype || !is_floating(*load.dtype)) throw Error("--dtype: '" + *d + "' is not float16, bfloat16 or float32");
  }
  if (auto f = args.get("offload-folder")) load.offload_folder = *f;
  load.prefetch = !args.flag("no-prefetch");
  load.map_cpu_weights = args.flag("map-weights");
  load.check_memory = !args.flag("no-memory-check");
  load.quantize = quantize;
  load.prefill_chunk = static_cast<std::int64_t>(args.get_u64("prefill-chunk", static_cast<std::uint64_t>(load.prefill_chunk)));
  if (cluster) load.layers = cluster->layers;
  const bool serving = cluster && cluster->pipeline.rank > 0;  // a later stage: rank 0 has the prompt

  // The prompt: ids as given, or text through the model's tokenizer.
  std::optional<Tokenizer> tokenizer;
  std::vector<std::int64_t> prompt;
  if (auto ids = args.get("prompt-ids")) {
    if (args.get("prompt")) throw Error("--prompt and --prompt-ids exclude each other");
    prompt = parse_ids(*ids);
  }
  const bool want_text = output == "text" && !serving;
  if (!serving && (prompt.empty() || want_text)) tokenizer = Tokenizer::load(checkpoint.dir());
  if (prompt.empty() && !serving) {
    std::string text;
    if (auto p = args.get("prompt"))
      text = *p;
    else
      text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    for (const int id : tokenizer->encode(text)) prompt.push_back(id);
    if (prompt.empty()) throw Error("the prompt is empty and the tokenizer adds no BOS; give some text");
  }

  // Ctrl-C cancels loading (nothing is left half-written) and stops generation between blocks.
  g_interrupted.store(false);
  const auto previous = std::signal(SIGINT, on_interrupt);
  struct RestoreSignal {
    void (*handler)(int);
    ~RestoreSignal() { std::signal(SIGINT, handler); }
  } restore{previous};
  // A progress line on standard error when it is a terminal.
  const bool terminal = &inv.err == &std::cerr && ::isatty(STDERR_FILENO);
  const auto load_start = std::chrono::steady_clock::now();
  auto last_drawn = load_start - std::chrono::seconds(1);
  bool drawn = false;
  load.on_progress = [&](const LoadProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (terminal && now - last_drawn >= std::chrono::milliseconds(100)) {
      inv.err << "\r" << progress_line(p, std::chrono::duration<double>(now - load_start).count()) << "\033[K" << std::flush;
      last_drawn = now;
      drawn = true;
    }
    return !g_interrupted.load();
  };
  std::optional<Model> loaded;
  try {
    loaded.emplace(Model::load(checkpoint, map, load));
  } catch (const LoadCancelled&) {
    if (drawn) inv.err << "\r\033[K";
    inv.err << "devicemap run: loading was cancelled\n";
    return 130;
  }
  if (drawn) inv.err << "\r\033[K" << std::flush;
  Model& model = *loaded;
  if (stats) print_load(inv.err, model.load_report());
  if (serving) {
    serve_pipeline(model, cluster->pipeline);
    return 0;
  }
  std::optional<LocalRanks> locals;
  if (cluster) {
    if (cluster->local) {
      locals.emplace(inv.args, cluster->ranks);
      cluster->pipeline.on_listening = [&](int port) { locals->start(port); };
    }
    join_pipeline(model, cluster->pipeline);
  }
  GenerationOptions gen = generation_options(args, model.generation_defaults());
  if (gen.eos_token_ids.empty() && tokenizer)
    for (const int id : tokenizer->eos_ids()) gen.eos_token_ids.push_back(id);

  // What was generated before a Ctrl-C is still printed.
  model.set_cancel_flag(&g_interrupted);

  const bool json = format == "json";
  std::optional<StreamDecoder> decoder;
  if (tokenizer && want_text) {
    // The prompt goes through the decoder unprinted: the new text then continues it (a SentencePiece
    // word keeps its leading space after the prompt, which it loses at the start of a text).
    decoder.emplace(*tokenizer, true);
    for (const auto id : prompt) decoder->push(static_cast<int>(id));
  }
  std::string text;
  bool first = true;
  if (!want_text && !json)  // the prompt first: scripts get the whole sequence, as generate() returns it
    for (const auto id : prompt) {
      inv.out << (first ? "" : " ") << id;
      first = false;
    }
  const auto on_token = [&](std::int64_t id) {
    if (!want_text) {
      if (!json) inv.out << (first ? "" : " ") << id << std::flush;
    } else {
      const std::string piece = decoder->push(static_cast<int>(id));
      text += piece;
      if (!json) inv.out << piece << std::flush;
    }
    first = false;
    return !g_interrupted.load();
  };
  const GenerationResult result = generate(model, prompt, gen, on_token);
  if (cluster) {
    end_pipeline(model);
    if (locals && locals->wait() > 0) throw Error("--local: a rank after rank 0 failed (its error is above)");
  }
  if (decoder) {
    const std::string rest = decoder->flush();
    text += rest;
    if (!json) inv.out << rest;
  }

  const auto& st = result.stats;
  if (json) {
    nlohmann::ordered_json j{{"prompt_ids", prompt}, {"ids", result.tokens}};
    if (want_text) j["text"] = text;  // invalid UTF-8 is replaced when dumped
    j["stop"] = stop_name(result.stop);
    j["stats"] = {{"load_seconds", st.load_seconds},
                  {"prompt_tokens", st.prompt_tokens},
                  {"new_tokens", st.new_tokens},
                  {"prefill_tokens_per_second", st.prefill_tokens_per_second()},
                  {"decode_tokens_per_second", st.decode_tokens_per_second()},
                  {"peak_resident_bytes", peak_resident_bytes()}};
    inv.out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    inv.out << "\n";
  }
  if (stats) {
    char line[320];
    std::snprintf(line, sizeof line,
                  "%lld prompt tokens at %.1f tok/s (their forward pass and the first token's choice), %lld new at %.1f tok/s "
                  "(the %lld decode steps after the first token; stop: %s)\n",
                  static_cast<long long>(st.prompt_tokens), st.prefill_tokens_per_second(), static_cast<long long>(st.new_tokens),
                  st.decode_tokens_per_second(), static_cast<long long>(st.decode_steps), stop_name(result.stop).c_str());
    inv.err << line;
    if (model.load_report().aliased_bytes > 0)
      inv.err << "note: " << format_size(model.load_report().aliased_bytes)
              << " of weights run from the files' mappings: this first pass also pays their page faults"
                 " (`bench generate` times a second pass)\n";
    inv.err << "peak memory: " << format_size(peak_resident_bytes()) << " resident in RAM (the whole process; mapped weights count once read)\n";
    for (const auto& [device, bytes] : model.kv_cache_held_bytes())
      inv.err << "KV cache: " << format_size(bytes) << " on " << device << "\n";
    const auto t = model.transfer_stats();
    if (t.fetched_tensors + t.prefetched_tensors > 0)
      inv.err << "moved " << format_size(t.transferred_bytes) << " of offloaded weights (" << t.prefetched_tensors
              << " tensors prefetched, " << t.fetched_tensors << " fetched on demand)\n";
  }
  return result.stop == StopReason::Cancelled && g_interrupted.load() ? 130 : 0;
}

}  // namespace devicemap::cli

#endif  // DEVICEMAP_HAVE_RUN_COMMANDS
