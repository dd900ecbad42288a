#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, AddressSanitizer + UndefinedBehaviorSanitizer) and runs each on its
# seed corpus for SECONDS (default 20). Corpora grow under the build folder; a crashing input is left
# in build-fuzz/artifacts/TARGET/ and the script fails (keep it in tests/fuzz/seeds as a regression).
#   tests/fuzz/run.sh 0               every seed and kept regression input once (what CI runs)
#   tests/fuzz/run.sh 1800            30 minutes per target
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${1:-20}"
build="${DEVICEMAP_FUZZ_BUILD_DIR:-$here/build-fuzz}"
compiler="$(command -v clang++-14 || command -v clang++ || true)"
if [[ -z "$compiler" ]]; then
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends clang-14 libclang-rt-14-dev
  compiler="$(command -v clang++-14)"
fi
cmake -S "$here/tests/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$compiler" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" -j "$(nproc)"

seeds="$here/tests/fuzz/seeds"
data="$here/tests/data"
# Seeds: the readers' real inputs from tests/data and resources, plus small hand-made ones.
declare -A sources=(
  [fuzz_safetensors_header]="$seeds/safetensors_header"
  [fuzz_plan_inputs]="$seeds/plan_inputs"
  [fuzz_checkpoint_index]="$seeds/checkpoint_index"
  [fuzz_config]="$seeds/config $here/resources/demo/config.json"
  [fuzz_small_readers]="$seeds/small_readers"
  [fuzz_bin_archive]="$seeds/bin_archive"
  [fuzz_tokenizer_json]="$seeds/tokenizer_json $data/tokenizers/llama2/tokenizer.json"
  [fuzz_tokenizer_model]="$here/resources/demo/tokenizer.model"
  [fuzz_cluster]="$seeds/cluster $here/resources/clusters"
)
failed=()
for target in fuzz_safetensors_header fuzz_plan_inputs fuzz_checkpoint_index fuzz_config fuzz_small_readers fuzz_bin_archive \
              fuzz_tokenizer_json fuzz_tokenizer_model fuzz_cluster; do
  corpus="$build/corpus/$target"
  mkdir -p "$corpus"
  for s in ${sources[$target]}; do
    if [[ -d "$s" ]]; then cp -n "$s"/* "$corpus"/ 2>/dev/null || true; elif [[ -f "$s" ]]; then cp -n "$s" "$corpus"/; fi
  done
  artifacts="$build/artifacts/$target"
  rm -rf "$artifacts" && mkdir -p "$artifacts"
  echo "== $target: $seconds s"
  limit=(-max_total_time="$seconds")
  ((seconds > 0)) || limit=(-runs=0)
  (cd "$build" && "./$target" "${limit[@]}" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
     -artifact_prefix="$artifacts/" "$corpus" 2>&1 | grep -E "^(stat::number_of_executed_units|stat::new_units_added|==[0-9]+==ERROR|SUMMARY)|Done [0-9]+ runs|what\(\)") || true
  if compgen -G "$artifacts/crash-*" > /dev/null || compgen -G "$artifacts/leak-*" > /dev/null || compgen -G "$artifacts/timeout-*" > /dev/null; then
    failed+=("$target")
  fi
done
if ((${#failed[@]})); then
  echo "fuzzing found inputs that fail in: ${failed[*]} (see $build/artifacts/TARGET/)" >&2
  exit 1
fi
