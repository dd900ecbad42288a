#pragma once
// Which code multiplies a prompt's bfloat16 matrices on the CPU. LibTorch 1.13 does it fast only through
// oneDNN, which it uses where the CPU has AVX-512 BW, VL and DQ (its mkldnn_bf16_device_check); on other
// CPUs (every AVX2 machine) its bfloat16 matrix multiply is a plain loop, about 30× slower than
// OpenBLAS's float32 one. There the products are widened: both sides in float32, multiplied by OpenBLAS,
// the result rounded once to bfloat16, which is what a bfloat16 product accumulating in float32 gives.
// Torch-free.
namespace devicemap {

// Whether this CPU runs LibTorch's bfloat16 matrix multiply through oneDNN.
bool cpu_multiplies_bf16();

// Whether a prompt's bfloat16 products are widened to float32 (where the CPU does not multiply bfloat16;
// tests force either path to compare them on any machine).
bool bf16_products_widened();
enum class Bf16Products { ByCpu, Widened, Native };
void use_bf16_products(Bf16Products choice);

}  // namespace devicemap
