// machine.cc — CPUs, TLB-first translation and user accesses with page-fault delivery.
//
// Theory of operation
// -------------------
// A user access of a byte range is cut at page boundaries and done in address order, one
// memcpy per page chunk (no per-byte work). Each chunk is translated by `translate`:
//
//   TLB hit   -> check the cached rights (user; writable for a write). A write through
//                an entry whose dirty state is clear re-walks the tables (setting D on
//                the leaf, as hardware does before it lets the first write through) and
//                refills the entry; if that walk faults, the fault is delivered.
//   TLB miss  -> walk with set_bits (A on every level, D on the leaf for a write) and
//                fill the TLB with the result.
//
// A fault first invalidates the TLB entry of the faulting address on that CPU (SDM 4.10.4.1:
// a #PF invalidates the entries used for the faulting address), then calls the kernel's
// FaultHandler with CR2 (the first byte of the chunk, i.e. the first faulting byte) and
// the error code. KERN_SUCCESS means "fixed, retry"; any other code stops the access
// there. A handler that says KERN_SUCCESS kMaxRetries times for the same page without the
// translation starting to work is a VM bug: the access stops with fault_loop set and
// KERN_FAILURE rather than looping forever. With no handler installed every fault stops
// the access with KERN_INVALID_ADDRESS.
//
// The handler may do anything to memory, page tables and TLBs (it calls into the pmap),
// so after it returns nothing cached about the chunk is reused: the chunk is translated
// again from scratch.
#include <algorithm>
#include <cstring>

#include "vm/machine/machine.h"
#include "vm/machine/bugs.h"

namespace vmfuzz::machine {

Machine::Machine(uint32_t nframes, unsigned ncpus, unsigned tlb_capacity, uint32_t device_frames)
    : mem_(nframes, device_frames) {
  init_cpus(ncpus, tlb_capacity);
}

void Machine::init_cpus(unsigned ncpus, unsigned tlb_capacity) {
  VMFUZZ_MACHINE_ASSERT(ncpus >= 1 && ncpus <= 64, "Machine", "1..64 CPUs");
  cpus_.clear();
  cpus_.reserve(ncpus);
  for (unsigned i = 0; i < ncpus; i++) {
    cpus_.emplace_back(tlb_capacity);
    cpus_.back().cr3 = kEmptyCr3;
  }
  stats_ = Stats{};
}

void Machine::reset(uint32_t nframes, unsigned ncpus, unsigned tlb_capacity, uint32_t device_frames) {
  mem_.reset(nframes, device_frames);
  init_cpus(ncpus, tlb_capacity);
}

PhysicalMemory& Machine::memory() { return mem_; }
const PhysicalMemory& Machine::memory() const { return mem_; }
unsigned Machine::cpu_count() const { return unsigned(cpus_.size()); }

Cpu& Machine::cpu(unsigned i) {
  VMFUZZ_MACHINE_ASSERT(i < cpus_.size(), "Machine::cpu", "no such CPU");
  return cpus_[i];
}

const Cpu& Machine::cpu(unsigned i) const {
  VMFUZZ_MACHINE_ASSERT(i < cpus_.size(), "Machine::cpu", "no such CPU");
  return cpus_[i];
}

void Machine::set_fault_handler(FaultHandler* h) { handler_ = h; }

void Machine::load_cr3(unsigned c, uint64_t cr3) {
  Cpu& k = cpu(c);
  k.cr3 = cr3;
  k.tlb.flush();
}

void Machine::invlpg(unsigned c, uint64_t va) { cpu(c).tlb.invalidate(va >> kPageShift); }

void Machine::flush_tlb(unsigned c) { cpu(c).tlb.flush(); }

const Machine::Stats& Machine::stats() const { return stats_; }

// Translate one page for a user access on CPU c: TLB first, then the walker.
Machine::Translation Machine::translate(unsigned c, uint64_t va, AccessKind kind) {
  Cpu& k = cpus_[c];
  const uint64_t vpn = va >> kPageShift;
  const bool write = kind == AccessKind::Write;
  if (const TlbEntry* e = k.tlb.lookup(vpn)) {
    stats_.tlb_hits++;
    if (!e->user || (write && !e->writable))
      return {false, kNoFrame, PF_P | PF_U | (write ? PF_W : 0u)};
    if (!write || e->dirty || VMFUZZ_BUG_ON(TlbWriteSkipsDirty)) return {true, e->frame, 0};
    stats_.dirty_rewalks++;  // first write through a clean entry: re-walk to set D
  } else {
    stats_.tlb_misses++;
  }
  stats_.walks++;
  WalkResult w = walk(mem_, k.cr3, va, kind, /*set_bits=*/true);
  if (!w.ok) return {false, kNoFrame, w.error_code};
  k.tlb.insert(TlbEntry{vpn, w.frame, w.writable, w.user, w.dirty});
  return {true, w.frame, 0};
}

AccessResult Machine::access(unsigned c, uint64_t va, uint8_t* buf, uint64_t len,
                             AccessKind kind) {
  VMFUZZ_MACHINE_ASSERT(c < cpus_.size(), "Machine::access", "no such CPU");
  AccessResult r;
  uint64_t done = 0;
  while (done < len) {
    const uint64_t cur = va + done;  // wraps modulo 2^64, as the hardware's adder does
    const uint64_t chunk = std::min<uint64_t>(len - done, kPageSize - (cur & (kPageSize - 1)));
    unsigned fixes = 0;  // handler successes for this page
    for (;;) {
      Translation t = translate(c, cur, kind);
      if (t.ok) {
        uint8_t* p = mem_.frame(t.frame) + (cur & (kPageSize - 1));
        if (kind == AccessKind::Write)
          std::memcpy(p, buf + done, chunk);
        else
          std::memcpy(buf + done, p, chunk);
        break;
      }
      stats_.faults++;
      cpus_[c].tlb.invalidate(cur >> kPageShift);
      r.fault_addr = cur;
      r.done = done;
      if (fixes == kMaxRetries) {
        r.kr = KERN_FAILURE;
        r.fault_loop = true;
        return r;
      }
      if (handler_ == nullptr) {
        r.kr = KERN_INVALID_ADDRESS;
        return r;
      }
      kern_return_t kr = handler_->page_fault(c, cur, t.error_code);
      if (kr != KERN_SUCCESS) {
        r.kr = kr;
        return r;
      }
      fixes++;
    }
    done += chunk;
  }
  r.kr = KERN_SUCCESS;
  r.fault_addr = 0;
  r.done = done;
  return r;
}

AccessResult Machine::load(unsigned c, uint64_t va, std::span<uint8_t> out) {
  return access(c, va, out.data(), out.size(), AccessKind::Read);
}

AccessResult Machine::store(unsigned c, uint64_t va, std::span<const uint8_t> data) {
  // access() only reads from buf for a store.
  return access(c, va, const_cast<uint8_t*>(data.data()), data.size(), AccessKind::Write);
}

}  // namespace vmfuzz::machine

namespace vmfuzz::machine {

VMFUZZ_NO_COVERAGE bool Machine::tlb_coherent(std::string* detail) const {
  // walk() with set_bits=false never writes memory.
  PhysicalMemory& mem = const_cast<PhysicalMemory&>(mem_);
  for (unsigned c = 0; c < cpus_.size(); c++) {
    for (const TlbEntry& e : cpus_[c].tlb.entries()) {
      const uint64_t va = e.vpn << kPageShift;
      WalkResult rd = walk(mem, cpus_[c].cr3, va, AccessKind::Read, false);
      WalkResult wr = walk(mem, cpus_[c].cr3, va, AccessKind::Write, false);
      const char* what = nullptr;
      if (!rd.ok && e.user)
        what = "entry grants a user access the tables refuse";
      else if (rd.ok && e.frame != rd.frame)
        what = "entry maps another frame than the tables";
      else if (e.writable && !wr.ok)
        what = "entry is writable, the tables are not";
      else if (e.dirty && rd.ok && !rd.dirty && e.writable)
        what = "entry is dirty, the leaf's D is clear (a write would not set D)";
      if (what != nullptr) {
        if (detail != nullptr) {
          char buf[256];
          std::snprintf(buf, sizeof buf,
                        "cpu %u va 0x%llx: %s (tlb frame %u w=%d d=%d; tables ok=%d frame %u)", c,
                        (unsigned long long)va, what, e.frame, int(e.writable), int(e.dirty),
                        int(rd.ok), rd.ok ? rd.frame : 0u);
          *detail = buf;
        }
        return false;
      }
    }
  }
  return true;
}

}  // namespace vmfuzz::machine
