// vm_pageout.h — page eviction (Mach's vm_pageout_scan / vm_page_evict_one) with the
// default pager for internal objects.
//
// Theory of operation
// -------------------
// Eviction takes pages from the inactive queue, then the active queue, in queue order
// (deterministic), skipping busy and wired pages (a fault in progress holds its pages
// busy). Evicting a page removes every mapping of it (pmap_page_protect NONE), folds the
// pmap modify bit into the page's dirty bit, and then:
//   - clean, and the pager has its data: freed (the pager's copy is the same);
//   - clean, no pager data, object without shadow: freed (it is a zero-fill page: the
//     next fault zero-fills again);
//   - clean, no pager data, object WITH a shadow: written to the pager anyway. Freeing it
//     would let the shadow chain show through: for a zero-filled page of a copy object
//     that is the original's NEWER data ("time rewind", docs/mach-departures.md B5; FreeBSD
//     r351830). GNU Mach frees such pages;
//   - dirty or precious: written to the object's pager (vm_object_pager_create on the
//     first pageout of an internal object), then freed.
// Nothing written is ever lost, and what any task reads is unchanged: the next fault
// finds the data in the pager (vm_fault_page pages it in) before looking further down.
// A cached object whose last page goes is terminated (vm_object_collect).
#pragma once

#include <cstdint>

#include "vm/vm_object.h"

namespace vmfuzz::vm {

/// Pages vm_page_grab evicts at a time under frame pressure.
inline constexpr uint64_t kGrabEvictBatch = 4;

/// Purpose:    Evict up to `count` pages (UINT64_MAX: every page that can go).
/// Conditions: never: evicts a busy or wired page.
/// Results:    the number of pages evicted. Counters: pageouts_clean, pageouts_dirty,
///             pageouts_kept_clean, pagers_created.
/// async_returns: a dirty page of a held manager's object is cleaned by an asynchronous
/// data_return (it stays busy until acknowledged, docs/concurrency.md §Cleaning); only the
/// `pageout` op asks for it: an eviction for a frame needs the frame now.
uint64_t vm_pageout_scan(VmSystem& sys, uint64_t count, bool async_returns = false);

/// Purpose:    Make frames free under pressure: evict up to kGrabEvictBatch pages; if
///             none can go, collect the page tables of every pmap (their mappings are
///             refaulted). Results: false when nothing could be freed.
bool vm_page_reclaim(VmSystem& sys);

/// Purpose:    Evict one page as described above. Conditions: page not busy, not wired.
void vm_pageout_page(VmSystem& sys, VmPage* p, bool async_returns = false);

}  // namespace vmfuzz::vm
