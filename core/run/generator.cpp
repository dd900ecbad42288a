#include "run/generator.hpp"

#include <algorithm>
#include <chrono>

#include "error.hpp"
#include "run/load_options.hpp"
#include "run/model.hpp"
#include "run/sampler.hpp"

namespace devicemap {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

GenerationResult generate(Model& model, std::span<const std::int64_t> prompt, const GenerationOptions& options,
                          const TokenCallback& on_token) {
  validate(options);
  if (prompt.empty()) throw Error("the prompt has no tokens; start it with the model's BOS id at least");
  GenerationResult result;
  result.stats.load_seconds = model.load_report().seconds;
  result.stats.prompt_tokens = static_cast<std::int64_t>(prompt.size());
  if (options.max_new_tokens == 0) return result;

  std::vector<std::int64_t> sequence(prompt.begin(), prompt.end());
  Sampler sampler(options.sampling);
  const std::int64_t context = model.config().max_position_embeddings;
  auto is_stop = [&](std::int64_t id) {
    return std::find(options.eos_token_ids.begin(), options.eos_token_ids.end(), id) != options.eos_token_ids.end();
  };

  model.reset();
  // The whole generation's KV cache is sized (and checked against free memory) before it starts.
  model.reserve_cache(static_cast<std::int64_t>(prompt.size()) + std::min(options.max_new_tokens, context));
  auto start = std::chrono::steady_clock::now();
  Logits logits;
  try {
    logits = model.forward(prompt);
  } catch (const Cancelled&) {
    result.stop = StopReason::Cancelled;
    return result;
  }
  std::int64_t next = sampler.next(logits.row(0), sequence);
  result.stats.prefill_seconds = seconds_since(start);

  start = std::chrono::steady_clock::now();
  for (;;) {
    sequence.push_back(next);
    result.tokens.push_back(next);
    const bool go_on = !on_token || on_token(next);
    if (is_stop(next)) {
      result.stop = StopReason::EndOfSequence;
      break;
    }
    if (!go_on) {
      result.stop = StopReason::Cancelled;
      break;
    }
    if (static_cast<std::int64_t>(result.tokens.size()) >= options.max_new_tokens) {
      result.stop = StopReason::MaxNewTokens;
      break;
    }
    if (static_cast<std::int64_t>(sequence.size()) >= context) {
      result.stop = StopReason::ContextFull;
      break;
    }
    const std::int64_t last[] = {next};
    try {
      logits = model.forward(last);
    } catch (const Cancelled&) {
      result.stop = StopReason::Cancelled;
      break;
    }
    next = sampler.next(logits.row(0), sequence);
    ++result.stats.decode_steps;
  }
  result.stats.decode_seconds = result.stats.decode_steps > 0 ? seconds_since(start) : 0;
  result.stats.new_tokens = static_cast<std::int64_t>(result.tokens.size());
  return result;
}

}  // namespace devicemap
