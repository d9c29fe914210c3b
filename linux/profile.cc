// profile.cc — the per-op half of the Linux profile (profile.h; docs/linux.md says why).
#include "linux/profile.h"

namespace vmfuzz::linux_backend {

std::optional<std::string> op_out_of_profile(const Op& op) {
  switch (op.kind) {
    case OpKind::Protect:
      if (op.set_max) return "protect max: Linux has no maximum protection that a call can lower";
      if (exec_only(op.prot)) return "protect --x: execute-only memory is readable on x86 Linux without protection keys";
      return std::nullopt;
    case OpKind::Map:
      if (op.max_prot != VM_PROT_ALL) return "map max=: Linux has no maximum protection of a mapping";
      if (exec_only(op.prot)) return "map prot=--x: execute-only memory is readable on x86 Linux without protection keys";
      return std::nullopt;
    case OpKind::Object:
      if (op.strategy == CopyStrategy::Call) return "object call: Linux has no manager-assisted (COPY_CALL) copy";
      return std::nullopt;
    case OpKind::Destroy:
      return "destroy: no Linux manager can destroy memory under its mappings (the contents would be undefined)";
    case OpKind::Device:
      return "device: device memory is not in the Linux profile";
    case OpKind::Hold:
    case OpKind::Reply:
    case OpKind::Run:
    case OpKind::Quiesce:
    case OpKind::Supply:
    case OpKind::HoldInit:
    case OpKind::Ready:
    case OpKind::Silent:
      // docs/concurrency.md: a held manager and its schedule. Linux pages in from its own
      // page cache at once; no user process can hold a page-in and answer it later
      // (userfaultfd answers faults of memory it owns, not of a shared file's pages), nor
      // push a page into another process's page cache unasked.
      return std::string(op_kind_name(op.kind)) +
             ": a held memory manager and its schedule are not in the Linux profile (docs/concurrency.md)";
    case OpKind::Lock:
    case OpKind::Ack:
      // docs/concurrency.md §Cleaning: msync and fadvise(DONTNEED) are the kernel's own
      // writeback and drop, asked by a user of the file; no process is the file's pager,
      // receives its dirty pages by message and acknowledges them later.
      return std::string(op_kind_name(op.kind)) +
             ": a manager's lock request and its acknowledged data_returns are not in the Linux profile (docs/concurrency.md)";
    case OpKind::Task: case OpKind::Allocate: case OpKind::Deallocate: case OpKind::Inherit:
    case OpKind::Write: case OpKind::Read: case OpKind::Fork: case OpKind::Terminate:
    case OpKind::VmCopy: case OpKind::VmRead: case OpKind::VmWrite: case OpKind::Copyout:
    case OpKind::Discard: case OpKind::ManagerWrite: case OpKind::File: case OpKind::Pageout:
    case OpKind::Check: case OpKind::Collect:
      return std::nullopt;
  }
  return "unknown op";
}

}  // namespace vmfuzz::linux_backend
