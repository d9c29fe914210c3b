// vm_pageout.cc — eviction and the default pager's side of pageout. Theory of operation:
// see vm_pageout.h.
#include "vm/vm_pageout.h"
#include "vm/machine/bugs.h"

#include <cassert>
#include <vector>

#include "vm/memory_object.h"

namespace vmfuzz::vm {

/// A cached (unreferenced) object whose last page was evicted has nothing left to keep:
/// terminate it (modern GNU Mach's vm_object_collect; cached objects have no shadow).
static void vm_object_collect_if_empty(VmSystem& sys, VmObject* object) {
  if (object->ref_count != 0 || object->resident_page_count != 0) return;
  vm_object_cache_remove(sys, object);
  assert(object->shadow == nullptr && "vm_object_collect: cached object with a shadow");
  vm_object_terminate(sys, object);
}

void vm_pageout_page(VmSystem& sys, VmPage* p, bool async_returns) {
  assert(!p->busy && p->wire_count == 0 && "vm_pageout_page: busy or wired page");
  VmObject* object = p->object;
  assert(object != nullptr && "vm_pageout_page: page in no object");
  sys.domain.pmap_page_protect(p->frame, VM_PROT_NONE);
  bool dirty = p->dirty || (!VMFUZZ_BUG_ON(DirtyBitLost) && sys.domain.pmap_is_modified(p->frame));
  if (object->pager_lost) {
    // Unknown memory of a destroyed memory object: there is nowhere to keep it.
    ++sys.counters.pageouts_clean;
    vm_page_free(sys, p);
    return;
  }
  if (!dirty && !p->precious) {
    if (vm_object_pager_data(object, p->offset) != nullptr ||
        (object->shadow == nullptr && object->internal) || VMFUZZ_BUG_ON(TimeRewind)) {
      ++sys.counters.pageouts_clean;
      vm_page_free(sys, p);
      vm_object_collect_if_empty(sys, object);
      return;
    }
    // A clean page above a shadow chain: keep its data (time-rewind fix).
    ++sys.counters.pageouts_kept_clean;
  } else {
    ++sys.counters.pageouts_dirty;
  }
  // A held manager's page is cleaned by message: it stays, busy, until acknowledged.
  if (async_returns && memory_object_data_return_async(sys, object, p, true)) return;
  if (object->pager == nullptr) vm_object_pager_create(sys, object);
  object->pager->data_return(p->offset + object->paging_offset,
                             sys.machine.memory().frame(p->frame));
  vm_page_free(sys, p);
  vm_object_collect_if_empty(sys, object);
}

uint64_t vm_pageout_scan(VmSystem& sys, uint64_t count, bool async_returns) {
  // Choose first (queue order: inactive, then active), evict after: eviction frees only
  // the page it is given, so the chosen pointers stay valid.
  std::vector<VmPage*> chosen;
  for (PageQueue* q : {&sys.inactive, &sys.active})
    for (VmPage* p = q->front(); p != nullptr && chosen.size() < count; p = p->q_next)
      if (!p->busy && p->wire_count == 0) chosen.push_back(p);
  for (VmPage* p : chosen) vm_pageout_page(sys, p, async_returns);
  return chosen.size();
}

}  // namespace vmfuzz::vm

namespace vmfuzz::vm {

bool vm_page_reclaim(VmSystem& sys) {
  if (vm_pageout_scan(sys, kGrabEvictBatch) > 0) {
    ++sys.counters.grab_evictions;
    return true;
  }
  if (sys.collect_page_tables && sys.collect_page_tables() > 0) {
    ++sys.counters.table_collections;
    return true;
  }
  return false;
}

}  // namespace vmfuzz::vm
