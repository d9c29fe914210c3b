// physical_memory.cc — simulated physical memory and its frame allocator.
//
// Theory of operation
// -------------------
// Physical memory is one byte buffer of N 4 KiB RAM frames and D device frames above them.
// Every RAM frame is either Free, or holds a page-table page (PageTable) or a VM page
// (VmPage); device frames are always Device; `use_` records which, so the
// harness can check that no frame is lost or used twice, and `counts_` keeps the totals.
//
// The allocator is a LIFO stack of free frames. Determinism: the same sequence of
// alloc_frame/free_frame calls always yields the same frames. LIFO also makes one class of
// bug visible: a freed frame is the very next one handed out and keeps its old bytes (we
// never zero or poison here), so a caller that forgets to zero a fresh frame reads the
// previous owner's data. Untouched frames hold kJunkByte, never zero, for the same reason.
// The junk is laid lazily (junk_fill_upto): every access to a frame goes through frame(),
// which fills all frames up to it on first touch — observably the same as filling the
// whole buffer at construction, but a machine of 4096 frames no longer costs 16 MiB of
// memset per fuzz input. Device frames are zeroed lazily too, each on its own first touch
// (device memory is defined: it reads zero until written).
//
// Buffer reuse: a destroyed PhysicalMemory leaves its byte buffer as the thread's spare
// (the largest seen is kept) and the next one built on the thread takes it when it is big
// enough, so a fuzzer building one machine per input does not map, fault in and unmap
// (under ASan: poison and quarantine) megabytes every time. Nothing is observable: the
// junk is laid lazily from frame 0 again, whatever the spare held. Under ASan the spare is
// poisoned while unused, and the part of a reused buffer beyond the machine's frames stays
// poisoned, so a stray access still faults as it would on a buffer of the exact size.
// reset() (Kernel::reset) goes further: the same PhysicalMemory takes a new frame count
// in its own buffer when it is large enough, poisoning or unpoisoning only the difference,
// and init() — shared with the constructor — sets everything else as construction does.
#include <cstring>
#include <utility>

#include "vm/machine/machine.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VMFUZZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define VMFUZZ_ASAN 1
#endif
#ifdef VMFUZZ_ASAN
#include <sanitizer/asan_interface.h>
#define VMFUZZ_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define VMFUZZ_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define VMFUZZ_POISON(p, n) ((void)(p), (void)(n))
#define VMFUZZ_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace vmfuzz::machine {

namespace {

// The thread's spare frame buffer (see the top of this file).
struct SpareBuffer {
  std::unique_ptr<uint8_t[]> bytes;
  size_t capacity = 0;
  ~SpareBuffer() { VMFUZZ_UNPOISON(bytes.get(), capacity); }
};
thread_local SpareBuffer g_spare;

// A buffer of at least `size` bytes, uninitialized, the first `size` addressable.
std::pair<std::unique_ptr<uint8_t[]>, size_t> take_buffer(size_t size) {
  if (g_spare.bytes != nullptr && g_spare.capacity >= size) {
    size_t capacity = std::exchange(g_spare.capacity, 0);
    std::unique_ptr<uint8_t[]> bytes = std::move(g_spare.bytes);
    VMFUZZ_UNPOISON(bytes.get(), size);
    return {std::move(bytes), capacity};
  }
  return {std::unique_ptr<uint8_t[]>(new uint8_t[size]), size};
}

// Keep `bytes` as the spare if it is larger than the current one.
void give_buffer(std::unique_ptr<uint8_t[]> bytes, size_t capacity) {
  if (bytes == nullptr) return;  // a moved-from PhysicalMemory
  if (g_spare.bytes != nullptr && g_spare.capacity >= capacity) {
    VMFUZZ_UNPOISON(bytes.get(), capacity);
    return;  // freed here
  }
  VMFUZZ_UNPOISON(g_spare.bytes.get(), g_spare.capacity);
  VMFUZZ_POISON(bytes.get(), capacity);
  g_spare.bytes = std::move(bytes);
  g_spare.capacity = capacity;
}

}  // namespace

void contract_failure(const char* where, const char* msg, const char* cond) {
  std::fprintf(stderr, "ERROR: vmfuzz contract %s: %s (%s)\n", where, msg, cond);
  std::fflush(stderr);
  std::abort();
}

PhysicalMemory::PhysicalMemory(uint32_t nframes, uint32_t device_frames)
    : nframes_(nframes), device_frames_(device_frames) {
  VMFUZZ_MACHINE_ASSERT(nframes < (1u << 24) && device_frames < (1u << 24), "PhysicalMemory",
                        "at most 2^24 frames");
  auto [bytes, capacity] = take_buffer((size_t(nframes) + device_frames) * kPageSize);
  bytes_ = std::move(bytes);
  capacity_ = capacity;
  init(nframes, device_frames);
}

void PhysicalMemory::init(uint32_t nframes, uint32_t device_frames) {
  nframes_ = nframes;
  device_frames_ = device_frames;
  junk_upto_ = 0;
  use_.assign(size_t(nframes) + device_frames, FrameUse::Free);
  for (uint32_t i = 0; i < device_frames; i++) use_[nframes + i] = FrameUse::Device;
  for (uint32_t& c : counts_) c = 0;
  counts_[size_t(FrameUse::Device)] = device_frames;
  device_zeroed_.assign(device_frames, 0);
  free_.clear();
  free_.reserve(nframes);
  // Push in reverse so that frame 0 is handed out first.
  for (uint32_t i = nframes; i > 0; i--) free_.push_back(i - 1);
  counts_[size_t(FrameUse::Free)] = nframes;
}

void PhysicalMemory::reset(uint32_t nframes, uint32_t device_frames) {
  VMFUZZ_MACHINE_ASSERT(nframes < (1u << 24) && device_frames < (1u << 24), "PhysicalMemory::reset",
                        "at most 2^24 frames");
  const size_t used = size_t(frame_count()) * kPageSize;
  const size_t need = (size_t(nframes) + device_frames) * kPageSize;
  if (bytes_ == nullptr || need > capacity_) {
    give_buffer(std::move(bytes_), capacity_);
    auto [bytes, capacity] = take_buffer(need);
    bytes_ = std::move(bytes);
    capacity_ = capacity;
  } else if (need > used) {
    VMFUZZ_UNPOISON(bytes_.get() + used, need - used);  // as take_buffer leaves it
  } else if (need < used) {
    VMFUZZ_POISON(bytes_.get() + need, used - need);  // beyond the frames: faults under ASan
  }
  init(nframes, device_frames);
}

PhysicalMemory::~PhysicalMemory() { give_buffer(std::move(bytes_), capacity_); }

void PhysicalMemory::junk_fill_upto(pfn_t f) const {
  if (f >= nframes_) {  // a device frame: zero it alone on its first touch
    uint8_t& zeroed = device_zeroed_[f - nframes_];
    if (!zeroed) {
      std::memset(bytes_.get() + size_t(f) * kPageSize, 0, kPageSize);
      zeroed = 1;
    }
    return;
  }
  std::memset(bytes_.get() + size_t(junk_upto_) * kPageSize, kJunkByte, size_t(f + 1 - junk_upto_) * kPageSize);
  junk_upto_ = f + 1;
}

pfn_t PhysicalMemory::alloc_frame(FrameUse use) {
  VMFUZZ_MACHINE_ASSERT(use != FrameUse::Free && use != FrameUse::Device, "alloc_frame",
                        "cannot allocate for use Free or Device");
  if (free_.empty()) return kNoFrame;
  pfn_t f = free_.back();
  free_.pop_back();
  use_[f] = use;
  counts_[size_t(FrameUse::Free)]--;
  counts_[size_t(use)]++;
  return f;
}

void PhysicalMemory::free_frame(pfn_t f) {
  VMFUZZ_MACHINE_ASSERT(f < nframes_, "free_frame", "frame out of range (or a device frame)");
  VMFUZZ_MACHINE_ASSERT(use_[f] != FrameUse::Free, "free_frame", "frame freed twice");
  counts_[size_t(use_[f])]--;
  counts_[size_t(FrameUse::Free)]++;
  use_[f] = FrameUse::Free;
  free_.push_back(f);
}

uint32_t PhysicalMemory::count_of(FrameUse use) const { return counts_[size_t(use)]; }


}  // namespace vmfuzz::machine
