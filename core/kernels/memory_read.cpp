#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/memory_read.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/highway.h>

#include "kernels/memory_read.hpp"

HWY_BEFORE_NAMESPACE();
namespace devicemap::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

std::uint64_t SumWords(const std::uint64_t* p, std::size_t n) {
  const hn::ScalableTag<std::uint64_t> d;
  const std::size_t lanes = hn::Lanes(d);
  // Four independent chains, so that the adds never limit the loads.
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  std::size_t i = 0;
  for (; i + 4 * lanes <= n; i += 4 * lanes) {
    s0 = hn::Add(s0, hn::LoadU(d, p + i));
    s1 = hn::Add(s1, hn::LoadU(d, p + i + lanes));
    s2 = hn::Add(s2, hn::LoadU(d, p + i + 2 * lanes));
    s3 = hn::Add(s3, hn::LoadU(d, p + i + 3 * lanes));
  }
  std::uint64_t sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
  for (; i < n; ++i) sum += p[i];
  return sum;
}

}  // namespace HWY_NAMESPACE
}  // namespace devicemap::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace devicemap::kernels {

HWY_EXPORT(SumWords);

std::uint64_t sum_words(const std::uint64_t* words, std::size_t n) { return HWY_DYNAMIC_DISPATCH(SumWords)(words, n); }

}  // namespace devicemap::kernels
#endif
