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
  // Four streams (the quarters of the range) read side by side: one thread keeps more reads in flight
  // from four places than from one (measured ~33 against ~17-29 GB/s), as the matrix kernels read four
  // rows at a time. Four chains, so that the adds never limit the loads.
  const std::size_t quarter = n / 4 / lanes * lanes;
  const std::uint64_t* q0 = p;
  const std::uint64_t* q1 = p + quarter;
  const std::uint64_t* q2 = p + 2 * quarter;
  const std::uint64_t* q3 = p + 3 * quarter;
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  for (std::size_t i = 0; i < quarter; i += lanes) {
    s0 = hn::Add(s0, hn::LoadU(d, q0 + i));
    s1 = hn::Add(s1, hn::LoadU(d, q1 + i));
    s2 = hn::Add(s2, hn::LoadU(d, q2 + i));
    s3 = hn::Add(s3, hn::LoadU(d, q3 + i));
  }
  // The lanes added as unsigned words here, not by SumOfLanes: on AVX-512 that is GCC's
  // _mm512_reduce_add_epi64, whose signed additions overflow (undefined behaviour) on arbitrary words.
  alignas(64) std::uint64_t lane[HWY_MAX_BYTES / sizeof(std::uint64_t)];
  hn::Store(hn::Add(hn::Add(s0, s1), hn::Add(s2, s3)), d, lane);
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < lanes; ++i) sum += lane[i];
  for (std::size_t i = 4 * quarter; i < n; ++i) sum += p[i];
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
