// libFuzzer target: model.safetensors.index.json of a sharded checkpoint (beside a config.json and one
// valid shard). Opening the folder either works or throws devicemap::Error, and a checkpoint that
// opens builds a skeleton (or says why not) without crashing.
#include "error.hpp"
#include "format/checkpoint.hpp"
#include "format/safetensors.hpp"
#include "fuzz_scratch.hpp"
#include "model/model_source.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace devicemap;
  static const bool ready = [] {
    const std::string config = R"({"model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
      "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 4})";
    fuzz::write("config.json", reinterpret_cast<const std::uint8_t*>(config.data()), config.size());
    const std::vector<float> w(32, 0.5f);
    write_safetensors(fuzz::scratch() / "model-00001-of-00002.safetensors",
                      {{"model.embed_tokens.weight", DType::F32, {4, 8}, std::as_bytes(std::span<const float>(w))}});
    return true;
  }();
  (void)ready;
  fuzz::write("model.safetensors.index.json", data, size);
  try {
    const Checkpoint c = Checkpoint::open(fuzz::scratch());
    (void)c.total_bytes();
    (void)skeleton_from_checkpoint(c);
  } catch (const Error&) {
  }
  return 0;
}
