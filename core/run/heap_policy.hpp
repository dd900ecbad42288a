#pragma once
// How the process's heap serves the runtime's large, short-lived buffers. Torch-free.
//
// A prompt's forward pass allocates activations and LibTorch's reordered weights of tens of MiB per
// operation and frees them right after. glibc serves a block above its mmap threshold (at most 32 MiB)
// with a fresh mapping and unmaps it on free, so every operation pays a page fault per 4 KiB again: on the
// 2-core VM measured, a 512-token prompt of a 1.1B bfloat16 Llama ran at 77-93 tok/s that way and at
// 255-282 tok/s with such blocks kept in the heap for reuse (`bench generate --prefill 512`, same run,
// same peak RSS). PyTorch's CPU tuning guides reach the same by preloading jemalloc or tcmalloc.
namespace devicemap {

// Blocks up to 256 MiB come from the heap, and up to 512 MiB of freed memory at its top is kept rather
// than returned. Once per process; a no-op where the C library is not glibc.
void keep_freed_memory_for_reuse();

// Returns every free page of the heap to the system (after a model is unloaded, so that what it held
// does not stay resident in a long-running program).
void release_freed_memory();

}  // namespace devicemap
