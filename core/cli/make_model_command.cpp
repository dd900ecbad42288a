// devicemap make-model OUT_DIR --catalog NAME | --config FILE [--layers N] [--dtype D] [--seed S] [--shard-size SIZE]
//                      [--quantize bnb8|nf4|fp4|gptq2|gptq4|gptq8|awq4]
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS  // built with the running layer only
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "error.hpp"
#include "format/atomic_file.hpp"
#include "model/model_source.hpp"
#include "plan/units.hpp"
#include "run/random_checkpoint.hpp"

namespace devicemap::cli {
namespace {

const char* const kUsage =
    "usage: devicemap make-model OUT_DIR (--catalog NAME | --config config.json) [options]\n"
    "Writes a checkpoint of random weights the runtime can load, of any size, to try plans, loading\n"
    "and speed without downloading a model.\n\n"
    "  --catalog NAME        a bundled model's config.json (devicemap plan catalog:NAME lists them)\n"
    "  --config FILE         a config.json\n"
    "  --layers N            keep only N blocks (num_hidden_layers / n_layer)\n"
    "  --dtype D             float16 (default), bfloat16 or float32\n"
    "  --seed S              random seed (default 0)\n"
    "  --shard-size SIZE     largest shard, e.g. 2GB (default 5GB, as transformers)\n"
    "  --quantize FORMAT     write the block Linears quantized, as these tools save them:\n"
    "                        bnb8 (bitsandbytes LLM.int8), nf4 / fp4 (bitsandbytes 4-bit, blocks of 64),\n"
    "                        gptq2 / gptq4 / gptq8 (GPTQ, groups of 128), awq4 (AutoAWQ GEMM, groups of 128)\n"
    "  --force               write into a folder that already has a config.json\n";

}  // namespace

int make_model_command(Invocation& inv) {
  const Args args(inv.args, {"catalog", "config", "layers", "dtype", "seed", "shard-size", "quantize"}, {"help", "force"});
  if (args.flag("help")) {
    inv.out << kUsage;
    return 0;
  }
  if (args.positionals().size() != 1) throw Error("make-model takes one output folder; see --help");
  const std::filesystem::path dir = args.positionals()[0];
  nlohmann::json config;
  if (auto name = args.get("catalog")) {
    if (args.get("config")) throw Error("--catalog and --config exclude each other");
    const auto entries = catalog();
    const CatalogEntry* entry = find_catalog_entry(entries, *name);
    if (!entry) throw Error("--catalog: no bundled model '" + *name + "'");
    config = entry->config;
  } else if (auto file = args.get("config")) {
    config = read_json_file(*file);
  } else {
    throw Error("make-model needs --catalog NAME or --config FILE");
  }
  if (auto layers = args.get("layers")) {
    const auto n = args.get_u64("layers", 0);
    if (n == 0) throw Error("--layers: '" + *layers + "' is not a positive number");
    config[config.contains("n_layer") ? "n_layer" : "num_hidden_layers"] = n;
  }
  if (auto q = args.get("quantize")) {
    if (*q == "bnb8")
      config["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}};
    else if (*q == "nf4" || *q == "fp4")
      config["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"bnb_4bit_quant_type", *q}};
    else if (*q == "gptq2" || *q == "gptq4" || *q == "gptq8")
      config["quantization_config"] = {{"quant_method", "gptq"}, {"bits", *q == "gptq2" ? 2 : *q == "gptq4" ? 4 : 8}, {"group_size", 128}, {"desc_act", false}};
    else if (*q == "awq4")
      config["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 128}, {"zero_point", true}, {"version", "gemm"}};
    else
      throw Error("--quantize: '" + *q + "' is not bnb8, nf4, fp4, gptq2, gptq4, gptq8 or awq4");
  }
  RandomCheckpointOptions o;
  if (auto d = args.get("dtype")) {
    const auto dtype = dtype_from_torch_name(*d);
    if (!dtype) throw Error("--dtype: '" + *d + "' is not float16, bfloat16 or float32");
    o.dtype = *dtype;
  }
  o.seed = args.get_u64("seed", 0);
  if (auto s = args.get("shard-size")) o.shard_bytes = parse_size(*s);
  if (std::filesystem::exists(dir / "config.json") && !args.flag("force"))
    throw Error(dir.string() + " already holds a model; pass --force to overwrite it");
  const RandomCheckpoint r = write_random_checkpoint(dir, config, o);
  inv.out << "wrote " << r.tensors << " tensors, " << format_size(r.bytes) << " in " << r.shards
          << (r.shards == 1 ? " file" : " shards") << " to " << dir.string() << "\n";
  return 0;
}

}  // namespace devicemap::cli

#endif  // DEVICEMAP_HAVE_RUN_COMMANDS
