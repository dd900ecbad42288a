// libFuzzer target for the small files and fields people write by hand, chosen by the input's first
// byte: a plan file (.plan.json), an offload folder's index.json, and a size with units ("24GiB").
// Each either reads or throws devicemap::Error.
#include <nlohmann/json.hpp>

#include "error.hpp"
#include "fuzz_scratch.hpp"
#include "plan/units.hpp"
#include "run/offload_folder.hpp"
#include "session/session.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace devicemap;
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 3) {
      case 0: {
        const auto j = nlohmann::json::parse(rest, nullptr, false);
        if (!j.is_discarded()) (void)PlanFile::from_json(j, "fuzz.plan.json");
        break;
      }
      case 1: {
        fuzz::write("index.json", data + 1, size - 1);
        const OffloadFolder folder(fuzz::scratch());
        for (const auto& [name, e] : folder.entries()) {
          try {
            (void)folder.map(name);  // no .dat files: each is refused by name
          } catch (const Error&) {
          }
        }
        break;
      }
      default: {
        const std::uint64_t bytes = parse_size(rest);
        (void)bytes;
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
