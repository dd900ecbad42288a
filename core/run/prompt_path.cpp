#include "run/prompt_path.hpp"

#include <atomic>

namespace devicemap {
namespace {
std::atomic<Bf16Products> choice{Bf16Products::ByCpu};
}

bool cpu_multiplies_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool yes = __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return yes;
#else
  return false;  // LibTorch 1.13 has oneDNN's bfloat16 products only on x86
#endif
}

void use_bf16_products(Bf16Products c) { choice.store(c, std::memory_order_relaxed); }

bool bf16_products_widened() {
  switch (choice.load(std::memory_order_relaxed)) {
    case Bf16Products::Widened: return true;
    case Bf16Products::Native: return false;
    case Bf16Products::ByCpu: break;
  }
  return !cpu_multiplies_bf16();
}

}  // namespace devicemap
