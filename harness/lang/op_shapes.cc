// op_shapes.cc — the shapes of each argument slot (see op_shapes.h).
#include "harness/lang/op_shapes.h"

#include <cassert>
#include <cstdio>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "harness/lang/codec.h"
#include "harness/lang/op_table.h"
#include "harness/lang/text.h"

namespace vmfuzz {

namespace {

constexpr uint64_t kPage = kPageSize;

/// Mostly one of 8 pages of the low window; sometimes an unaligned address near a page
/// end, a far base, or an edge of user space or of 2^64 (codec.h's tables).
uint64_t shaped_addr(const Pick& pick) {
  switch (pick(16)) {
    case 0: return kEdgeAddrs[pick(std::size(kEdgeAddrs))];
    case 1: return kFarBases[pick(std::size(kFarBases))];
    case 2: return kUserMax - kPage * (1 + pick(2));            // the last pages below the hole
    case 3: return 0x10000 + pick(8) * kPage + kPage - 1 - pick(8);  // crossing a page end
    default: return 0x10000 + pick(8) * kPage;
  }
}

uint64_t shaped_size(const Pick& pick) {
  switch (pick(16)) {
    case 0: return kEdgeSizes[pick(std::size(kEdgeSizes))];
    case 1: return 1 + pick(0x20);
    default: return (1 + pick(4)) * kPage;
  }
}

DataSpec shaped_data(const Pick& pick) {
  static constexpr uint64_t kLengths[] = {0x10, kPage, 2 * kPage, 3};
  uint8_t b = static_cast<uint8_t>(1 + pick(255));
  uint64_t len = kLengths[pick(std::size(kLengths))];
  return pick(4) == 0 ? DataSpec::pat(b, len) : DataSpec::fill(b, len);
}

}  // namespace

Op shaped_op(OpKind k, const Pick& pick) {
  Op op;
  op.kind = k;
  for (Slot s : op_spec(k).slots()) {
    switch (s) {
      case Slot::Task:
      case Slot::EndTask: op.task = static_cast<uint8_t>(pick(4)); break;
      case Slot::TaskCpu:
        op.task = static_cast<uint8_t>(pick(4));
        op.cpu = pick(4) == 0 ? 1 : 0;
        break;
      case Slot::NewTask: op.task = static_cast<uint8_t>(1 + pick(5)); break;
      case Slot::ChildTask: op.task2 = static_cast<uint8_t>(1 + pick(5)); break;
      case Slot::Copy:
      case Slot::NewCopy: op.copy = static_cast<uint8_t>(pick(3)); break;
      case Slot::Object:
      case Slot::NewObject: op.object = static_cast<uint8_t>(pick(4)); break;
      case Slot::AddrOrAny:
        op.anywhere = pick(6) == 0;
        op.addr = op.anywhere ? 0 : shaped_addr(pick);
        break;
      case Slot::Addr:
      case Slot::SrcAddr: op.addr = shaped_addr(pick); break;
      case Slot::DstAddr: op.addr2 = shaped_addr(pick); break;
      case Slot::Size: op.size = shaped_size(pick); break;
      case Slot::Xfer: op.size = pick(2) ? 0x10 : (1 + pick(2)) * kPage; break;
      case Slot::ObjSize:
      case Slot::DevSize: op.size = (1 + pick(4)) * kPage; break;
      case Slot::Offset: op.offset = pick(8) == 0 ? 1 + pick(31) : pick(3) * kPage; break;
      case Slot::ProtMax:
        op.prot = static_cast<vm_prot_t>(pick(8));
        op.set_max = pick(5) == 0;
        break;
      case Slot::Inheritance: op.inherit = static_cast<vm_inherit_t>(pick(3)); break;
      case Slot::Data: op.data = shaped_data(pick); break;
      case Slot::ObjFlags:
        op.strategy = static_cast<CopyStrategy>(pick(3));
        op.persist = pick(2);
        [[fallthrough]];
      case Slot::DevData:
        if (pick(4) != 0) op.data = DataSpec::fill(static_cast<uint8_t>(1 + pick(255)), op.size - pick(2) * (op.size / 2));
        break;
      case Slot::MapMode:
        op.share = pick(2);
        if (pick(4) == 0) {
          op.prot = static_cast<vm_prot_t>(pick(8));
          op.max_prot = pick(2) ? VM_PROT_ALL : static_cast<vm_prot_t>(op.prot | pick(8));
          op.inherit = static_cast<vm_inherit_t>(pick(3));
        }
        break;
      case Slot::PageCount:
        op.all = pick(3) == 0;
        op.size = op.all ? 0 : 1 + pick(8);
        break;
      case Slot::Choice: op.choice = static_cast<uint16_t>(pick(4)); break;  // `~N`: any N is usable
      case Slot::ReplyHow: op.how = static_cast<ReplyHow>(pick(3)); break;
      case Slot::LockHow: op.lock = static_cast<uint8_t>(1 + pick(3)); break;
    }
  }
  return op;
}


// --- Whole shapes ----------------------------------------------------------------------

namespace {

/// One family: its name and its trace lines. Placeholders, drawn per sequence:
///   {T} the acting task (mostly t0); {U} {V} new tasks; {C} {C2} new handles; {M} a new object
///   {A} the region's base, {A1} its second page, {N} its size (2..4 pages), {P} one page
///   {D} a second region of {N} bytes, {L} {L2} where the first and second copyout land
///       when the low window is free (0x10000, 0x10000 + {N})
///   {B1} {B2} {B3} bytes; {S} a copy strategy; {Q} a pageout count ("all" or 1..4)
///   {E...} edge lines: a few of kEdgeLines, in order
///   the concurrency families': {Z} a held object's region (6 pages, {Z6}), {Z1}..{Z4} its
///       pages, {Zx} {Zm} addresses crossing into its second page and in its first, {Zc} a
///       second region beside it; {ACC} {FREE} {UNMAP} {H1} {H2} {R1} {R2} their choices;
///       the format-5 families' {W...} choices, drawn after everything else
struct Family {
  const char* name;
  const char* lines;
};

constexpr Family kFamilies[] = {
    {"fork_chain",  // collapse_overwrites, bypass_while_needed: writes at each level, the middle ends
     "allocate {T} {A} {N}\nwrite {T} {A} fill:{B1}*{N}\nfork {T} {U}\nwrite {T} {A} fill:{B2}*0x10\n"
     "fork {U} {V}\nwrite {U} {A1} fill:{B3}*0x10\nterminate {U}\nread {V} {A} 0x20\nread {T} {A} 0x20\n"
     "read {V} {A1} 0x10\nwrite {V} {A} fill:{B1}*0x10\nread {T} {A} 0x10"},
    {"fork_clipped",  // shadow_offset_twice, clip_offset_wrong: a fork of a clipped region
     "allocate {T} {A} {N}\nwrite {T} {A} pat:{B1}*{N}\ndeallocate {T} {A} {P}\nfork {T} {U}\n"
     "write {U} {A1} fill:{B2}*0x10\nfork {U} {V}\nterminate {U}\nread {V} {A1} 0x1000\nread {T} {A1} 0x1000"},
    {"snapshot_then_write",  // missed_push: a vm_read snapshot of a shared region, then a write
     "allocate {T} {A} {N}\nwrite {T} {A} fill:{B1}*{N}\ninherit {T} {A} {N} share\nfork {T} {U}\nvm_read {T} {A} {N} {C}\nwrite {T} {A} fill:{B2}*0x10\n"
     "allocate {T} {D} {N}\nvm_write {T} {D} {C}\nread {T} {D} 0x20\nvm_read {T} {A} {N} {C}\ncopyout {T} {C}\n"
     "write {T} {A} fill:{B3}*0x1000\nread {T} {L} 0x20"},
    {"share_after_copy",  // share_without_shadow: fork COPY, then SHARE of the same needs_copy entry
     "allocate {T} {A} {N}\nwrite {T} {A} fill:{B1}*{N}\nfork {T} {U}\ninherit {T} {A} {N} share\nfork {T} {V}\n"
     "write {V} {A} fill:{B2}*0x10\nread {U} {A} 0x10\nread {T} {A} 0x10"},
    {"shared_region_copied",  // missed_push through a shared region, stale copies
     "allocate {T} {A} {N}\nwrite {T} {A} fill:{B1}*{N}\ninherit {T} {A} {N} share\nfork {T} {U}\n"
     "vm_read {U} {A} {N} {C}\nwrite {T} {A} fill:{B2}*0x10\ncopyout {U} {C}\nread {U} {L} 0x10\n"
     "pageout {Q}\nwrite {U} {A1} fill:{B3}*0x10\nread {U} {L} 0x1010"},
    {"snapshot_pressure",  // time_rewind: an untouched shared page, snapshot read, original written, pageout
     "allocate {T} {A} {N}\ninherit {T} {A} {N} share\nfork {T} {U}\nvm_read {T} {A} {N} {C}\ncopyout {T} {C}\n"
     "read {T} {L} 0x10\nwrite {U} {A} fill:{B2}*0x10\npageout {Q}\nread {T} {L} 0x10\nread {U} {A} 0x10"},
    {"pageout_between_snapshot_and_write",  // push_over_paged_out
     "allocate {T} {A} {N}\nwrite {T} {A} fill:{B1}*{N}\ninherit {T} {A} {N} share\nfork {T} {U}\nvm_read {T} {A} {N} {C}\ncopyout {T} {C}\nread {T} {L} 0x10\n"
     "pageout {Q}\nwrite {T} {A} fill:{B2}*0x10\nread {T} {L} 0x10\nwrite {T} {A1} fill:{B3}*0x10\nread {T} {L} 0x1010"},
    {"second_snapshot",  // copy_object_always_reused, old_copy_not_repointed
     "allocate {T} {A} {N}\nwrite {T} {A} fill:{B1}*{N}\ninherit {T} {A} {N} share\nfork {T} {U}\nvm_read {T} {A} {N} {C}\nwrite {T} {A} fill:{B2}*0x10\n"
     "vm_read {T} {A} {N} {C2}\nwrite {T} {A1} fill:{B3}*0x10\ncopyout {T} {C}\ncopyout {T} {C2}\n"
     "read {T} {L} 0x1010\nread {T} {L2} 0x1010"},
    {"pageout_then_collapse",  // a shadowing object's own pages paged out, then a collapse into it
     "allocate {T} {A} {N}\nwrite {T} {A} fill:{B1}*{N}\nfork {T} {U}\nwrite {T} {A} fill:{B2}*{N}\n"
     "write {U} {A1} fill:{B3}*0x10\npageout {Q}\nterminate {U}\nread {T} {A} 0x20\nread {T} {A1} 0x20\n"
     "write {T} {A} fill:{B3}*0x10\npageout all\nread {T} {A1} 0x10"},
    {"kernel_write_shared_object",  // vm_copy / vm_write into a shared mapping, seen by the manager
     "object {M} {N} {S} persist fill:{B1}*{N}\nmap {T} {A} {N} {M} 0x0 share\nallocate {T} {D} {N}\n"
     "write {T} {D} fill:{B2}*{N}\n{K}\nfile {M} 0x0 0x20\nfile {M} {P} 0x10\nread {T} {A} 0x10"},
    {"edges",  // the last page below the hole, the hole, non-canonical, wrap-around
     "allocate {T} 0x7fffffffe000 0x1000\nwrite {T} 0x7fffffffe000 fill:{B1}*0x10\n{E}"},
    {"copy_call_twice",  // unlock_keeps_mappings, copy_call_not_write_locked
     "object {M} {N} call nopersist fill:{B1}*{N}\nmap {T} {A} {N} {M} 0x0 share\nread {T} {A} 0x10\n"
     "map {T} {D} {N} {M} 0x0 copy\nread {T} {D} 0x10\nwrite {T} {A} fill:{B2}*0x10\nread {T} {D} 0x10\n"
     "fork {T} {U}\nwrite {T} {A} fill:{B3}*0x10\nread {U} {D} 0x10"},
    {"destroy_after_copies",  // destroy_loses_copies
     "object {M} {N} {S} persist fill:{B1}*{N}\nmap {T} {A} {N} {M} 0x0 share\nwrite {T} {A} fill:{B2}*0x10\n"
     "map {T} {D} {N} {M} 0x0 copy\nvm_read {T} {A} {N} {C}\ndestroy {M}\nread {T} {D} 0x20\ncopyout {T} {C}\n"
     "read {T} {L} 0x20"},
    {"cached_object_remapped",  // cached_object_not_found
     "object {M} {N} {S} persist fill:{B1}*{N}\nmap {T} {A} {N} {M} 0x0 share\nwrite {T} {A} fill:{B2}*0x10\n"
     "deallocate {T} {A} {N}\nmap {T} {A} {N} {M} 0x0 share\nread {T} {A} 0x20\nfile {M} 0x0 0x10"},
    {"coalesce_after_shrink",  // coalesce_keeps_stale
     "allocate {T} {A} {N}\nwrite {T} {A1} fill:{B1}*0x1000\ndeallocate {T} {A1} {P}\nallocate {T} {A1} {P}\n"
     "read {T} {A1} 0x10"},
    {"protect_after_fork",  // pmap_protect_raises, protect_no_pmap, no_shootdown_after_protect
     "allocate {T} {A} {N}\nprotect {T} {A} {N} rwx\nwrite {T} {A} fill:{B1}*0x10 cpu=1\nfork {T} {U}\n"
     "protect {T} {A} {N} rw-\nwrite {T} {A} fill:{B2}*0x10 cpu=1\nread {U} {A} 0x10\nprotect {T} {A} {N} r--\n"
     "write {T} {A} fill:{B3}*0x10 cpu=1\nread {T} {A} 0x10"},
    {"dirty_after_read",  // tlb_write_skips_dirty, dirty_bit_lost
     "allocate {T} {A} {N}\nread {T} {A} 0x10\nwrite {T} {A} fill:{B1}*0x10\npageout {Q}\nread {T} {A} 0x10\n"
     "write {T} {A1} fill:{B2}*0x10 cpu=1\npageout all\nread {T} {A1} 0x10"},
    {"shared_then_deallocated",  // stale_shared_mapping, freed_while_mapped, no_shootdown_after_remove
     "allocate {T} {A} {N}\nwrite {T} {A} fill:{B1}*{N}\ninherit {T} {A} {N} share\nfork {T} {U}\n"
     "write {U} {A1} fill:{B2}*0x10\nfork {T} {V}\nread {T} {A1} 0x10 cpu=1\ndeallocate {T} {A} {N}\n"
     "read {T} {A1} 0x10 cpu=1\nallocate {T} {A} {N}\nwrite {T} {A} fill:{B3}*{N}\nread {U} {A} 0x10\nread {V} {A1} 0x10"},
    // Concurrency (docs/concurrency.md): a held manager's requests in flight, with the
    // schedule (replies of every kind, runs) interleaved with what a race needs.
    {"held_two_on_one_page",  // second_data_request, lost_wakeup, fault_no_recheck
     "object {M} {Z6} none persist fill:{B1}*{Z6}\nmap {T} {Z} {Z6} {M} 0x0 share\nhold {M}\nread {T} {Z} 0x10\n"
     "{ACC}\nreply {M} ~0 {H1}\nrun ~{R1}\nrun ~{R2}\nread {T} {Z} 0x10\nfile {M} 0x0 0x10"},
    {"held_woken_then_freed",  // fault_no_recheck: the page a waiter slept on goes before it runs
     "object {M} {Z6} none persist fill:{B1}*{Z6}\nmap {T} {Z} {Z6} {M} 0x0 share\nhold {M}\nread {T} {Z} 0x10\n"
     "{ACC}\nreply {M} ~0 {H1}\nrun ~0\n{FREE}\nrun ~0\nquiesce\nread {T} {Z} 0x10"},
    {"held_destroy_during_pagein",  // abort_leaves_absent: destroy with requests and waiters
     "object {M} {Z6} none persist fill:{B1}*{Z6}\nmap {T} {Z} {Z6} {M} 0x0 share\nhold {M}\nread {T} {Z} 0x10\n"
     "write {T} {Z1} fill:{B2}*0x10\n{ACC}\ndestroy {M}\nquiesce\nread {T} {Z} 0x10\nread {T} {Z1} 0x10"},
    {"held_unmap_during_pagein",  // request_takes_no_reference: the last mapping goes while paging
     "object {M} {Z6} none nopersist fill:{B1}*{Z6}\nmap {T} {Z} {Z6} {M} 0x0 share\nhold {M}\n"
     "read {T} {Z} 0x10\n{UNMAP}\nreply {M} ~0 {H1}\nquiesce\nmap {T} {Z} {Z6} {M} 0x0 share\n"
     "read {T} {Z} 0x10"},
    {"held_absent_max",  // absent_max_ignored: more requests than kAbsentMax, then replies
     "object {M} {Z6} none persist fill:{B1}*{Z6}\nmap {T} {Z} {Z6} {M} 0x0 share\nhold {M}\nread {T} {Z} 0x10\n"
     "read {T} {Z1} 0x10\nwrite {T} {Z2} fill:{B2}*0x10\nread {T} {Z3} 0x10\nread {T} {Z4} 0x10\n"
     "reply {M} ~{R1} {H1}\nrun ~{R2}\nreply {M} ~0 {H2}\nquiesce\nread {T} {Z4} 0x10"},
    {"held_reply_kinds",  // data_error_zero_fills, absent_count_leak: unavailable and error replies
     "object {M} {Z6} none persist fill:{B1}*{Z6}\nmap {T} {Z} {Z6} {M} 0x0 share\nhold {M}\n"
     "read {T} {Zx} 0x10\nread {T} {Z2} 0x10\nreply {M} ~{R1} {H1}\nreply {M} ~0 {H2}\nrun ~{R2}\nrun ~0\n"
     "read {T} {Z} 0x10\nread {T} {Z2} 0x10\nfile {M} 0x0 0x10\nquiesce"},
    {"held_shared_by_two_tasks",  // two tasks' faults on one page of one object, a write between
     "object {M} {Z6} none persist fill:{B1}*{Z6}\nmap {T} {Z} {Z6} {M} 0x0 share\ninherit {T} {Z} {Z6} share\nfork {T} {U}\nhold {M}\n"
     "read {T} {Z} 0x10\nread {U} {Z} 0x10\nreply {M} ~0 {H1}\nrun ~{R1}\nwrite {U} {Z} fill:{B2}*0x10\n"
     "quiesce\nread {T} {Z} 0x10\nterminate {U}"},
    // Format 5 (docs/concurrency.md §Managers, §Initialization): copies and kernel paths
    // meeting a page in transit, a flush of it, an unrequested supply over a dirty page,
    // and faults before the manager is ready. Their {W...} choices are drawn last.
    {"held_copy_of_absent",  // copy_reads_absent_page: a copy without a fault of a page in transit
     "object {M} {Z6} none persist fill:{B1}*{Z6}\nmap {T} {Z} {Z6} {M} 0x0 share\nhold {M}\nread {T} {Z} 0x10\n"
     "{WCOPY}\nreply {M} ~0 {H1}\nrun ~0\n{WCOPYREAD}\nquiesce"},
    {"held_kernel_write_absent",  // kernel_path_takes_busy: vm_copy / vm_write over a page in transit
     "object {M} {Z6} none persist fill:{B1}*{Z6}\nmap {T} {Z} {Z6} {M} 0x0 share\nallocate {T} {Zc} {P}\n"
     "write {T} {Zc} fill:{B2}*0x10\nhold {M}\n{WFAULT}\n{WKERNEL}\nreply {M} ~0 {H1}\nrun ~0\nquiesce\n"
     "read {T} {Z} 0x10\nread {T} {Z1} 0x10"},
    {"held_flush_during_pagein",  // flush_takes_absent: a lock request's flush of a page in transit
     "object {M} {Z6} none persist fill:{B1}*{Z6}\nmap {T} {Z} {Z6} {M} 0x0 share\nhold {M}\n{WFAULT}\n"
     "{WFLUSH}\nreply {M} ~0 {H1}\nrun ~0\nquiesce\nread {T} {Z} 0x10\nfile {M} 0x0 0x10"},
    {"supply_over_dirty",  // unrequested_supply_overwrites: supply of a resident, written page
     "object {M} {Z6} none persist fill:{B1}*{Z6}\nmap {T} {Z} {Z6} {M} 0x0 share\nwrite {T} {Z} fill:{B2}*0x10\n"
     "{WPRE}\nsupply {M} {WOFF}\n{WPOST}\nread {T} {Z} 0x10\nfile {M} 0x0 0x10\nquiesce"},
    {"init_held_faults",  // fault_ignores_pager_ready, ready_wakes_nobody: faults before the ready
     "object {M} {Z6} none persist fill:{B1}*{Z6}\nhold_init {M}\n{WINIT}\nread {T} {Z} 0x10\n{WACC}\n"
     "ready {M}\nrun ~{WR}\nrun ~0\n{WTAIL}\nquiesce\nread {T} {Z1} 0x10"},
    // Frame pressure (docs/bugs.md, "What no engine reaches"): 112 distinct pages, in
    // writes of 64 KiB (the most one binary write moves), a fork between them. In the
    // smaller configurations (64 or 96 frames) the page grab must evict (vm_page_reclaim).
    {"frame_pressure",
     "allocate {T} 0x200000 0x60000\nwrite {T} 0x200000 fill:{B1}*0x10000\nwrite {T} 0x210000 fill:{B2}*0x10000\n"
     "write {T} 0x220000 fill:{B3}*0x10000\nfork {T} {U}\nwrite {U} 0x200000 fill:{B2}*0x10000\n"
     "write {T} 0x230000 fill:{B1}*0x10000\nwrite {T} 0x240000 fill:{B3}*0x10000\n"
     "write {T} 0x250000 fill:{B2}*0x10000\nread {T} 0x200000 0x10\nread {U} 0x210000 0x10\n"
     "read {T} 0x250000 0x10"},
};
static_assert(std::size(kFamilies) == kShapeFamilies);

// The edges family's tail: lines around the last page below the hole, the hole itself,
// non-canonical addresses and ranges that wrap past 2^64. A few, in order.
constexpr const char* kEdgeLines[] = {
    "write {T} 0x7fffffffeff8 fill:{B2}*0x10",       // crosses into the hole: a fault after 8 bytes
    "read {T} 0x7fffffffeff0 0x20",
    "allocate {T} 0x7ffffffff000 0x1000",             // the first page outside user space
    "allocate {T} 0x800000000000 0x1000",             // non-canonical
    "allocate {T} 0xffff800000000000 0x1000",
    "deallocate {T} 0x7fffffffe000 0x3000",
    "protect {T} 0x7fffffffe000 0x2000 r--",
    "protect {T} 0xfffffffffffff000 0x2000 r--",      // wraps
    "inherit {T} 0x7fffffffe000 0x1000 share",
    "inherit {T} 0xffffffffffffe000 0x3000 none",     // wraps
    "vm_read {T} 0x7fffffffe000 0x2000 {C}",          // runs into the hole
    "vm_read {T} 0x7fffffffe000 0x1000 {C}",
    "copyout {T} {C}",
    "vm_copy {T} 0x7fffffffe000 0x1000 0xfffffffffffff000",
    "vm_copy {T} 0xffffffffffffe000 0x3000 0x7fffffffe000",
    "fork {T} {U}",
    "read {U} 0x7fffffffe000 0x10",
    "write {T} 0x7fffffffe000 fill:{B3}*0x10",
    "deallocate {T} 0xfffffffffffff000 0x2000",       // wraps
    "allocate {T} 0xffffffffffffe000 0x3000",         // wraps
};

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

void replace_all(std::string& t, std::string_view key, const std::string& value) {
  for (size_t pos = 0; (pos = t.find(key, pos)) != std::string::npos; pos += value.size())
    t.replace(pos, key.size(), value);
}

}  // namespace

const char* shape_family_name(unsigned f) {
  assert(f < kShapeFamilies && "shape_family_name: no such family");
  return kFamilies[f].name;
}

std::vector<Op> shaped_sequence(const Pick& pick, unsigned family) {
  assert(family <= kShapeFamilies && "shaped_sequence: no such family");
  const Family& fam = kFamilies[family < kShapeFamilies ? family : pick(kShapeFamilies)];
  std::string t = fam.lines;
  // The edges tail first: its lines hold placeholders of their own.
  if (t.find("{E}") != std::string::npos) {
    std::string tail;
    for (const char* line : kEdgeLines)
      if (pick(3) == 0) tail += std::string(tail.empty() ? "" : "\n") + line;
    if (tail.empty()) tail = kEdgeLines[pick(std::size(kEdgeLines))];
    replace_all(t, "{E}", tail);
  }
  const uint64_t pages = 2 + pick(3);
  const uint64_t n = pages * kPage;
  // The region: mostly pages 8..11 of the low window (so a copyout of up to 8 pages lands
  // at 0x10000 when the window is free), sometimes a far base, sometimes the last pages
  // below the hole.
  uint64_t a;
  switch (pick(8)) {
    case 0: a = kFarBases[pick(std::size(kFarBases))]; break;
    case 1: a = kUserMax - n; break;
    default: a = 0x18000 + pick(4) * kPage; break;
  }
  const uint64_t d = a == kUserMax - n ? 0x30000 + pick(4) * kPage : a + n + pick(3) * kPage;
  const unsigned name = 6 + static_cast<unsigned>(pick(6));  // slots 6..12: rarely taken
  static constexpr const char* kStrategies[] = {"delay", "none", "call"};
  static constexpr const char* kKernelWrites[] = {
      "vm_copy {T} {D} {N} {A}",
      "vm_read {T} {D} {N} {C}\nvm_write {T} {A} {C}",
      "read {T} {A} 0x10\nvm_copy {T} {D} {P} {A1}",
      "pageout all\nvm_read {T} {D} {N} {C}\nvm_write {T} {A} {C}",
  };
  replace_all(t, "{K}", kKernelWrites[pick(std::size(kKernelWrites))]);
  // The concurrency families' own placeholders (first: they hold others). Drawn only for
  // them, so that the other families' draws are what they were.
  // Every placeholder filled from here on, in order, so that lines put in later (the
  // format-5 families' choices) can be filled with the same values.
  std::vector<std::pair<std::string, std::string>> filled;
  auto put = [&](std::string_view key, const std::string& value) {
    replace_all(t, key, value);
    filled.emplace_back(key, value);
  };
  if (t.find("{Z") != std::string::npos) {
  static constexpr const char* kSecondAccesses[] = {
      "read {T} {Z} 0x20", "write {T} {Z} fill:{B2}*0x10", "read {T} {Zm} 0x10", "write {T} {Zx} fill:{B2}*0x10",
  };
  static constexpr const char* kFrees[] = {
      "pageout all", "destroy {M}", "deallocate {T} {Z} {P}", "protect {T} {Z} {P} ---", "reply {M} ~0 {H2}",
  };
  static constexpr const char* kUnmaps[] = {
      "deallocate {T} {Z} {Z6}", "fork {T} {U}\ndeallocate {T} {Z} {Z6}\nterminate {U}",
      "deallocate {T} {Z1} 0x5000\ndeallocate {T} {Z} {P}",
  };
  put("{ACC}", kSecondAccesses[pick(std::size(kSecondAccesses))]);
  put("{FREE}", kFrees[pick(std::size(kFrees))]);
  put("{UNMAP}", kUnmaps[pick(std::size(kUnmaps))]);
  static constexpr const char* kReplies[] = {"supply", "unavailable", "error"};
  put("{H1}", kReplies[pick(std::size(kReplies))]);
  put("{H2}", kReplies[pick(std::size(kReplies))]);
  put("{R1}", std::to_string(pick(3)));
  put("{R2}", std::to_string(pick(3)));
  const uint64_t z = 0x40000 + pick(4) * 0x10000;  // a held object's region, away from the others'
  for (unsigned k = 1; k <= 4; k++) put("{Z" + std::to_string(k) + "}", hex(z + k * kPage));
  put("{Z6}", hex(6 * kPage));
  put("{Zx}", hex(z + kPage - 8));   // crosses into the second page
  put("{Zm}", hex(z + kPage / 2));   // another byte of the first page
  put("{Zc}", hex(z + 8 * kPage));  // a second region beside the held object's
  put("{Z}", hex(z));
  }
  const uint64_t q = pick(3);
  put("{Q}", q == 0 ? std::string("all") : std::to_string(q + pick(3)));
  put("{T}", "t" + std::to_string(pick(4) == 0 ? pick(4) : 0));
  put("{U}", "t" + std::to_string(name));
  put("{V}", "t" + std::to_string(name + 1));
  put("{C2}", "c" + std::to_string(name + 1));
  put("{C}", "c" + std::to_string(name));
  put("{M}", "m" + std::to_string(name));
  put("{A1}", hex(a + kPage));
  put("{A}", hex(a));
  put("{D}", hex(d));
  put("{N}", hex(n));
  put("{P}", hex(kPage));
  put("{L2}", hex(kUserMin + n));
  put("{L}", hex(kUserMin));
  put("{S}", kStrategies[pick(3)]);
  for (const char* b : {"{B1}", "{B2}", "{B3}"}) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned>(1 + pick(255)));
    put(b, buf);
  }
  // The format-5 families' choices, drawn last and only for them (so that every other
  // family draws what it drew before they existed); their lines hold the placeholders
  // above, filled again with the values already drawn.
  if (t.find("{W") != std::string::npos) {
    // A copy that reads the page without a fault, then a read of the copy.
    static constexpr const char* kCopies[][2] = {
        {"map {T} {Zc} {Z6} {M} 0x0 copy\nread {T} {Zc} 0x10", "read {T} {Zc} 0x10"},
        {"allocate {T} {Zc} {P}\nvm_copy {T} {Z} {P} {Zc}\nread {T} {Zc} 0x10", "read {T} {Zc} 0x10"},
        {"vm_read {T} {Z} {P} {C}\nallocate {T} {Zc} {P}\nvm_write {T} {Zc} {C}", "read {T} {Zc} 0x10"},
        {"fork {T} {U}\nread {U} {Z} 0x10", "read {U} {Z} 0x10\nterminate {U}"},
        {"vm_read {T} {Z} {Z6} {C}", "copyout {T} {C}\nread {T} {L} 0x10"},
    };
    static constexpr const char* kFaults[] = {
        "read {T} {Z} 0x10", "write {T} {Z} fill:{B3}*0x10", "read {T} {Z} 0x10\nread {T} {Z1} 0x10",
    };
    static constexpr const char* kKernels[] = {
        "vm_copy {T} {Zc} {P} {Z}", "vm_read {T} {Zc} {P} {C}\nvm_write {T} {Z} {C}",
        "vm_read {T} {Zc} {P} {C}\nvm_write {T} {Z1} {C}",
    };
    static constexpr const char* kFlushes[] = {
        "manager_write {M} 0x0 fill:{B2}*0x10",
        "manager_write {M} {P} fill:{B2}*0x10\nmanager_write {M} 0x0 fill:{B3}*0x10",
        "manager_write {M} 0x0 fill:{B2}*0x2000",
        "write {T} {Z1} fill:{B2}*0x10\nmanager_write {M} 0x0 fill:{B3}*0x2000",
    };
    static constexpr const char* kPre[] = {
        "hold {M}\nread {T} {Z1} 0x10", "read {T} {Z} 0x10", "write {T} {Z1} fill:{B3}*0x10",
        "hold {M}\nread {T} {Z} 0x10",
    };
    static constexpr const char* kPost[] = {
        "run ~0", "supply {M} {P}\nrun ~0", "reply {M} ~0 {H1}\nrun ~0", "read {T} {Z1} 0x10",
    };
    static constexpr const char* kInits[] = {
        "map {T} {Z} {Z6} {M} 0x0 share", "hold {M}\nmap {T} {Z} {Z6} {M} 0x0 share",
        "map {T} {Z} {Z6} {M} 0x0 share\nallocate {T} {Zc} {P}",
    };
    static constexpr const char* kInitAccesses[] = {
        "write {T} {Z1} fill:{B2}*0x10", "read {T} {Z} 0x20", "read {T} {Z1} 0x10",
        "allocate {T} {Zc} {P}\nwrite {T} {Zc} fill:{B2}*0x10\nvm_read {T} {Zc} {P} {C}\nvm_write {T} {Z1} {C}",
        "write {T} {Z} fill:{B2}*0x10",
    };
    static constexpr const char* kInitTails[] = {
        "read {T} {Z} 0x10", "reply {M} ~0 {H1}\nrun ~0",
        "manager_write {M} 0x0 fill:{B3}*0x10\nreply {M} ~0 {H1}\nrun ~0", "ready {M}",
    };
    const auto& copy = kCopies[pick(std::size(kCopies))];
    replace_all(t, "{WCOPY}", copy[0]);
    replace_all(t, "{WCOPYREAD}", copy[1]);
    replace_all(t, "{WFAULT}", kFaults[pick(std::size(kFaults))]);
    replace_all(t, "{WKERNEL}", kKernels[pick(std::size(kKernels))]);
    replace_all(t, "{WFLUSH}", kFlushes[pick(std::size(kFlushes))]);
    replace_all(t, "{WPRE}", kPre[pick(std::size(kPre))]);
    replace_all(t, "{WOFF}", pick(4) == 0 ? hex(kPage) : hex(0));
    replace_all(t, "{WPOST}", kPost[pick(std::size(kPost))]);
    replace_all(t, "{WINIT}", kInits[pick(std::size(kInits))]);
    replace_all(t, "{WACC}", kInitAccesses[pick(std::size(kInitAccesses))]);
    replace_all(t, "{WR}", std::to_string(pick(3)));
    replace_all(t, "{WTAIL}", kInitTails[pick(std::size(kInitTails))]);
    for (const auto& [key, value] : filled) replace_all(t, key, value);
  }
  std::vector<Op> ops;
  for (size_t start = 0; start < t.size();) {
    size_t end = t.find('\n', start);
    if (end == std::string::npos) end = t.size();
    Op op;
    std::string reason;
    const bool ok = parse_op_line(std::string_view(t).substr(start, end - start), &op, &reason);
    assert(ok && "shaped_sequence: a family line does not parse");
    if (ok) ops.push_back(canonical_op(op));
    start = end + 1;
  }
  return ops;
}

// --- The three classes -------------------------------------------------------------------

ShapeClasses classify_shapes(std::span<const Op> ops) {
  ShapeClasses c;
  // pageout_collapse: fork, write, pageout, terminate/deallocate, access — in this order.
  int stage = 0;
  // kernel_write_file: objects mapped shared (bit per slot), a kernel write seen since.
  uint32_t shared_objects = 0;
  bool kernel_write = false;
  // held_race: held objects (bit per slot), accesses since the first hold, a reply of a
  // held object after two of them.
  uint32_t held = 0;
  unsigned accesses_held = 0;
  bool replied = false;
  // init_race: objects whose init is held (bit per slot), an access since the first.
  uint32_t init_held = 0;
  bool accessed_init = false;
  for (const Op& op : ops) {
    const OpSpec& spec = op_spec(op.kind);
    if (spec.has(Slot::Addr) || spec.has(Slot::SrcAddr) || (spec.has(Slot::AddrOrAny) && !op.anywhere)) {
      const uint64_t size = spec.has(Slot::Size) || spec.has(Slot::Xfer) ? op.size
                            : op.kind == OpKind::Write                  ? op.data.size()
                                                                        : 0;
      if (op.addr >= kUserMax - kPage || op.addr + size < op.addr) c.edge = true;
    }
    if (spec.has(Slot::DstAddr) && (op.addr2 >= kUserMax - kPage || op.addr2 + op.size < op.addr2)) c.edge = true;
    if (held && (op.kind == OpKind::Read || op.kind == OpKind::Write)) accesses_held++;
    if (init_held && (op.kind == OpKind::Read || op.kind == OpKind::Write)) accessed_init = true;
    switch (op.kind) {
      case OpKind::Hold: if (op.object < 32) held |= 1u << op.object; break;
      case OpKind::HoldInit: if (op.object < 32) init_held |= 1u << op.object; break;
      case OpKind::Ready:
        if (accessed_init && op.object < 32 && (init_held >> op.object & 1)) c.init_race = true;
        break;
      case OpKind::Reply:
        if (accesses_held >= 2 && op.object < 32 && (held >> op.object & 1)) replied = true;
        break;
      case OpKind::Run:
      case OpKind::Quiesce: if (replied) c.held_race = true; break;
      case OpKind::Fork: if (stage == 0) stage = 1; break;
      case OpKind::Write:
        if (stage == 1) stage = 2;
        kernel_write = false;
        break;
      case OpKind::Pageout: if (stage == 2) stage = 3; break;
      case OpKind::Terminate:
      case OpKind::Deallocate: if (stage == 3) stage = 4; break;
      case OpKind::Read: if (stage == 4) c.pageout_collapse = true; break;
      case OpKind::Map: if (op.share && op.object < 32) shared_objects |= 1u << op.object; break;
      case OpKind::VmCopy:
      case OpKind::VmWrite: if (shared_objects) kernel_write = true; break;
      case OpKind::File:
        if (kernel_write && op.object < 32 && (shared_objects >> op.object & 1)) c.kernel_write_file = true;
        break;
      default: break;
    }
  }
  return c;
}

}  // namespace vmfuzz
