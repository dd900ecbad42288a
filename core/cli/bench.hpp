#pragma once
// `devicemap bench`: every measurement is one line, or one JSON object per line with --format json:
// {"name", "value", "unit", "bound"?, "ratio"?}. A bound is measured in the same run where there is one;
// ratio is always value / bound.
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace devicemap::cli {

struct Measurement {
  std::string name;
  double value = 0;
  std::string unit;
  std::optional<double> bound;
  std::optional<double> ratio;
  std::string note;  // how the bound was obtained
};

void print_measurement(std::ostream& os, const Measurement& m, bool json);

// Median of `runs` timings of fn, in microseconds.
double median_us(int runs, const std::function<void()>& fn);

int bench_plan(const std::vector<std::string>& args, std::ostream& out);
int bench_kernels(const std::vector<std::string>& args, std::ostream& out);
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS
int bench_load(const std::vector<std::string>& args, std::ostream& out);
int bench_generate(const std::vector<std::string>& args, std::ostream& out);
#endif

}  // namespace devicemap::cli
