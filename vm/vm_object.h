// vm_object.h — VM objects (Mach's vm/vm_object.h): shadow and copy chains, symmetric
// and asymmetric copy-on-write, collapse and bypass, coalesce, termination; plus the
// VmSystem context (frames, pmap domain, page queues, counters, tunables) and the page
// routines that need it (grab, free, insert, rename).
//
// Theory of operation
// -------------------
// An object is a sparse array of pages indexed by offset. The content at offset o is
// the resident page at o if there is one; otherwise the pager's data; otherwise
// the content of `shadow` at o + shadow_offset; otherwise zeros. Every resident page
// belongs to exactly one object.
//
// Copy-on-write comes in two forms, as in Mach:
// - Symmetric (temporary objects, vm_object_copy_temporary): both map entries keep the
//   same object and get `needs_copy`; the first write through either entry puts a fresh
//   shadow object in front of it (vm_object_shadow), into which pages are copied up. The
//   shared object is then never written again: nobody maps it writable.
// - Asymmetric (objects that are shared writable, `use_shared_copy`, and memory objects
//   with the DELAY strategy: vm_object_copy_delayed): the source S keeps being written by
//   its users; the copy is a new object C that shadows S at offset 0 (`S.copy == C`).
//   Before a page of S changes, the fault path pushes the old contents into C. An older
//   copy object shadows the newer one, so pushes go only to the newest. A copy object
//   that never received a page is reused by the next copy.
//
// Reference counts count map entries, shadow pointers, entries of map copies in flight
// and short-lived holds; the `copy` pointer is NOT counted (Mach). ref_count == 1 is the
// exclusive-ownership test used by collapse, coalesce and entry deletion.
//
// Collapse (vm_object_collapse) shortens chains: if the parent holds the only reference
// to its backing object B, B's pages the parent can see and lacks move up and B is
// freed (collapse); otherwise, if the parent already supplies every page of B it can
// see, the parent points past B (bypass). Both are switchable (Tunables) and counted.
//
// Shadowers and reclaim: each object lists the objects that shadow it (`shadowers`,
// kept by vm_object_set_shadow). An object referenced by its shadowers alone is seen
// only through them; when a reference drop leaves it so, it is collapsed into a single
// shadower, or the pages every shadower hides are freed (vm_object_shadow_reclaim), and
// after ops that drop map or copy references the kernel frees pages no referrer's window
// reaches (vm_object_reclaim_unseen). docs/mach-departures.md G1-G4.
//
// Pagers: an internal object gets a default-pager store on its first pageout
// (vm_object_pager_create); an external object (memory_object.h) is served by its
// manager from the start. A fault asks an object's pager before looking further down
// the chain. A persistent (can_persist) object whose last reference goes while it has
// resident pages waits in the object cache (VmSystem::cached, bounded by config.cache)
// to be found again by vm_object_enter.
//
// Objects are owned by VmSystem::objects (keyed by a creation-order id, never by
// pointer); iteration over objects is therefore deterministic.
//
// Field key: [c] changed only by the routines in this file; [f] also by the fault path;
// [m] also by the map code (vm_map.cc); [p] pager fields (vm_pageout.cc, memory_object.cc).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "vm/machine/machine.h"
#include "vm/pmap/pmap.h"
#include "vm/sched.h"
#include "vm/vm_page.h"
#include "vmfuzz/vocab.h"

namespace vmfuzz::vm {

/// A memory manager as the kernel sees it (Mach's memory_object port plus the manager
/// behind it), reduced to the calls the kernel makes: data_request (data()),
/// data_return. Offsets are pager offsets (object offset + paging_offset).
class Pager {
 public:
  virtual ~Pager() = default;
  /// memory_object_data_request: the page's data, or nullptr (data_unavailable).
  virtual const uint8_t* data(uint64_t offset) const = 0;
  /// memory_object_data_return: store a (dirty or precious) page.
  virtual void data_return(uint64_t offset, const uint8_t* page) = 0;
  /// Offsets the pager holds data for, in order, within [start, end) (oracles).
  virtual void offsets(uint64_t start, uint64_t end, std::vector<uint64_t>& out) const = 0;
  /// The lock the manager puts on a page it supplies (data_supply's lock_value).
  virtual vm_prot_t lock_value(uint64_t offset) const {
    (void)offset;
    return VM_PROT_NONE;
  }
  /// memory_object_data_unlock for write access; `current` is the page's present contents
  /// (returned with the request, so the manager can save them first, COPY_CALL).
  virtual void data_unlock(uint64_t offset, const uint8_t* current) {
    (void)offset;
    (void)current;
  }
  /// memory_object_terminate: the kernel object using this pager is gone.
  virtual void terminate() {}
  /// A device pager's map function (the map_fn of vm_object_page_map): the device frame
  /// holding `offset`, or kNoFrame for pagers that supply data by copy (all others).
  virtual machine::pfn_t device_frame(uint64_t offset) const {
    (void)offset;
    return machine::kNoFrame;
  }
  /// A held manager (docs/concurrency.md) answers data requests by message, later: a
  /// fault queues a request (data_request) and blocks instead of reading data() now.
  virtual bool held() const { return false; }
  /// Queue a data request (only when held()). `object`/`offset`: the kernel page waiting.
  virtual void data_request(uint64_t object, uint64_t offset, uint64_t pager_offset, uint32_t owner) {
    (void)object, (void)offset, (void)pager_offset, (void)owner;
  }
};

/// The default pager's backing store for one internal object (Hurd mach-defpager's
/// per-object partition): pages written by pageout, kept after page-in.
class DefaultPager final : public Pager {
 public:
  const uint8_t* data(uint64_t offset) const override;
  void data_return(uint64_t offset, const uint8_t* page) override;
  void offsets(uint64_t start, uint64_t end, std::vector<uint64_t>& out) const override;

 private:
  std::map<uint64_t, std::array<uint8_t, kPageSize>> store_;
};

struct VmObject {
  uint64_t id = 0;            // stable creation-order id (introspection, determinism)
  int ref_count = 1;          // [c,m] counted references [invariant ref_counts]
  uint64_t size = 0;          // [c] bytes; grown by coalesce
  VmObject* shadow = nullptr; // [c] backing object (counted reference)
  uint64_t shadow_offset = 0; // [c]
  VmObject* copy = nullptr;   // [c] newest copy object (NOT counted) [copy_object_shape]
  bool internal = true;       // created by the kernel (default-pager backed)
  bool temporary = true;      // contents need not reach a pager except on pageout
  bool shadowed = false;      // [c] sticky: a shadow (or needs_copy sharer) may exist
  bool use_shared_copy = false;  // [m] sticky: shared writable; copies are asymmetric
  bool can_persist = false;      // [p] keep in the cache when unreferenced
  CopyStrategy copy_strategy = CopyStrategy::Delay;  // [p]
  Pager* pager = nullptr;          // [p] the memory manager (null: none yet)
  std::unique_ptr<Pager> owned_pager;  // [p] internal objects own their default-pager store
  uint64_t paging_offset = 0;      // [p] added to offsets sent to the pager
  bool pager_created = false;      // [p] a pager was ever assigned (sticky)
  bool pager_initialized = false;  // [p]
  bool pager_ready = true;         // [p] internal objects are ready at once
  unsigned paging_in_progress = 0; // [f] faults hold busy pages here: no collapse
  unsigned absent_count = 0;       // [f,p]
  bool alive = true;               // [c]
  bool pager_lost = false;         // [p] the manager destroyed the memory object: its
                                   //     contents are unknown; faults zero-fill
  PageTree pages;                  // [c,f] resident pages by offset >> 12
  unsigned resident_page_count = 0;  // [c,f] [invariant resident_counts]
  /// Objects whose `shadow` is this one, in the order they were linked (FreeBSD's
  /// shadow_head / shadow_count). Changed only by vm_object_set_shadow. Each is one of
  /// the counted references, so ref_count == shadowers.size() means that no map entry,
  /// copy in flight or hold references the object: only its shadowers can see it.
  std::vector<VmObject*> shadowers;  // [c]
};

/// Counters, one per mechanism (benchmarks, coverage feedback, tests).
struct VmCounters {
  uint64_t faults = 0;             // vm_fault calls
  uint64_t zero_fills = 0;         // pages zero-filled at the bottom of a chain
  uint64_t copy_ups = 0;           // pages copied up into the top object on write
  uint64_t pushes = 0;             // pages pushed into a copy object before a write
  uint64_t collapses = 0;          // backing objects collapsed into their parent
  uint64_t bypasses = 0;           // backing objects bypassed
  uint64_t collapse_pages_moved = 0;
  uint64_t copy_object_reuses = 0; // copy_delayed reused an unmodified copy object
  uint64_t copies_delayed = 0;     // new copy objects made by copy_delayed
  uint64_t copies_symmetric = 0;   // symmetric copies (copy_temporary)
  uint64_t shadows = 0;            // vm_object_shadow
  uint64_t coalesces = 0;          // vm_object_coalesce successes (entry extended)
  uint64_t entry_merges = 0;       // map entries re-merged after protect/inherit
  uint64_t objects_created = 0;
  uint64_t objects_terminated = 0;
  uint64_t pages_grabbed = 0;
  uint64_t pages_freed = 0;
  uint64_t overwrite_fast = 0;     // copy_overwrite entries replaced (fast path)
  uint64_t overwrite_slow_pages = 0;  // pages copied by copy_overwrite's slow path
  uint64_t pageins = 0;            // pages read back from a pager by a fault
  uint64_t pageouts_clean = 0;     // pages evicted without writing (the pager has them)
  uint64_t pageouts_dirty = 0;     // pages written to their pager, then evicted
  uint64_t pageouts_kept_clean = 0;  // clean pages written anyway: they shadow a chain
  uint64_t pagers_created = 0;     // vm_object_pager_create
  uint64_t grab_evictions = 0;     // evictions forced by frame pressure (grab, pmap_enter)
  uint64_t table_collections = 0;  // pmap_collect rounds forced by frame pressure
  uint64_t cache_enters = 0;       // objects kept in the cache at their last reference
  uint64_t cache_hits = 0;         // vm_object_enter found the object (alive or cached)
  uint64_t cache_trims = 0;        // cached objects terminated to respect the bound
  uint64_t copies_slowly = 0;      // vm_object_copy_slowly
  uint64_t copies_call = 0;        // vm_object_copy_call
  uint64_t unlocks = 0;            // data_unlock requests (write to a write-locked page)
  uint64_t device_pages_mapped = 0;    // private pages made by vm_object_page_map
  uint64_t device_pages_released = 0;  // private pages dropped (their frames stay the device's)
  uint64_t deallocate_collapses = 0;  // collapses started by a reference drop (one shadower left)
  uint64_t data_requests = 0;      // requests queued to held managers (docs/concurrency.md)
  uint64_t thread_blocks = 0;      // faults that blocked a thread (any yield point)
  uint64_t inits_queued = 0;             // memory_object_init held by a manager (hold_init)
  uint64_t pageins_before_ready = 0;     // data asked of a manager whose object is not ready
                                         // (only after bug fault_ignores_pager_ready)
  uint64_t terminated_while_paging = 0;  // vm_object_terminate with paging in progress:
                                         // always 0 unless a bug [invariant paging_accounting]
  uint64_t hidden_pages_freed = 0;    // pages of shadow-only objects no shadower can see
  uint64_t returns_sent = 0;          // data_returns queued to held managers (cleaning pages)
  uint64_t lock_requests = 0;         // `lock`: memory_object_lock_request from a manager
  uint64_t locks_completed = 0;       // memory_object_lock_completed sent
};

/// Optimizations that can be switched off; switching never changes what a task observes.
struct VmTunables {
  bool collapse_allowed = true;  // vm_object_collapse_allowed
  bool bypass_allowed = true;    // vm_object_collapse_bypass_allowed
  /// Reclaim shadow-only objects (docs/mach-departures.md): when a reference drop leaves
  /// an object referenced by its shadowers alone, collapse it into its one shadower, or
  /// free the pages every shadower hides; after a copy-up, free the lower page when no
  /// shadower of its object can see it any more.
  bool shadow_reclaim_allowed = true;
};

/// The machine-independent VM's global state (Mach keeps these in globals).
class VmSystem {
 public:
  VmSystem(machine::Machine& m, pmap::PmapDomain& d);
  /// The same, building the per-frame tables in the storage of `recycled` (a VmSystem's
  /// own tables, taken by take_frame_tables): no allocation when it is large enough. The
  /// state is that of the constructor above (which is this one with empty tables).
  struct FrameTables {
    std::vector<VmPage> pages;
    std::vector<VmPage*> page_of_frame;
  };
  VmSystem(machine::Machine& m, pmap::PmapDomain& d, FrameTables&& recycled);
  /// Frees every object still alive (as the destructor), then gives up the per-frame
  /// tables for the next VmSystem (Kernel::reset); this one is left with none.
  FrameTables take_frame_tables();
  ~VmSystem();  // frees any object still alive (no pmap work)
  VmSystem(const VmSystem&) = delete;
  VmSystem& operator=(const VmSystem&) = delete;

  machine::Machine& machine;
  pmap::PmapDomain& domain;
  std::map<uint64_t, VmObject*> objects;  // live objects by id (owning)
  uint64_t next_object_id = 1;
  /// Mach's vm_page_array: one VmPage per frame of physical memory, made once with the
  /// system; vm_page_grab hands out the structure of the frame it allocates, so a fault
  /// never allocates heap memory for a page. Pages outside this array (private device pages,
  /// whose frame is not a RAM frame) are made and freed by their owners;
  /// vm_page_in_array tells them apart.
  std::vector<VmPage> vm_page_array;
  std::vector<VmPage*> page_of_frame;     // frame -> resident page (or nullptr)
  PageQueue active{VmPage::Queue::Active};
  PageQueue inactive{VmPage::Queue::Inactive};
  VmCounters counters;
  VmTunables tunables;
  /// The object cache: unreferenced persistent objects with resident pages, oldest
  /// first, at most cache_bound of them (config.cache).
  std::vector<VmObject*> cached;
  unsigned cache_bound = 4;
  /// Frees page-table frames of every pmap (pmap_collect in task order; set by the Kernel,
  /// which owns the maps). Returns the frames freed. Used under frame pressure.
  std::function<unsigned()> collect_page_tables;
  /// Kernel threads and their scheduler (vm/sched.h, docs/concurrency.md).
  Scheduler sched;
};

// --- Pages --------------------------------------------------------------------------------

/// Allocate a page with a fresh frame (contents undefined). Under frame pressure, first
/// evicts pages (vm_pageout_scan) that are not busy. Results: nullptr when no frame can be
/// freed. The page belongs to no object and no queue.
VmPage* vm_page_grab(VmSystem& sys);
/// Is p the vm_page_array structure of its frame (rather than a page made elsewhere)?
inline bool vm_page_in_array(const VmSystem& sys, const VmPage* p) {
  return p->frame < sys.vm_page_array.size() && &sys.vm_page_array[p->frame] == p;
}
/// Free a page: remove every mapping of its frame (all pmaps), take it out of its object
/// and queue, release the frame (a private device page releases only its structure: the
/// frame stays the device's). Conditions: page not busy; wired only if private.
void vm_page_free(VmSystem& sys, VmPage* p);
/// Insert p into object at offset (page-aligned) and activate it if it is on no queue.
/// Conditions: no page there.
void vm_page_insert(VmSystem& sys, VmPage* p, VmObject* object, uint64_t offset);
/// Take p out of its object (stays allocated).
void vm_page_remove(VmPage* p);
/// Move p to (object, offset); mappings stay valid when the VA->offset relation holds.
void vm_page_rename(VmPage* p, VmObject* object, uint64_t offset);
/// The resident page at (object, offset), or nullptr.
VmPage* vm_page_lookup(const VmObject* object, uint64_t offset);
/// First resident page at offset >= `offset`, or nullptr (offset order).
VmPage* vm_page_next(const VmObject* object, uint64_t offset);
/// Put p at the tail of the active queue (from wherever it was).
void vm_page_activate(VmSystem& sys, VmPage* p);
void vm_page_deactivate(VmSystem& sys, VmPage* p);

// --- Objects --------------------------------------------------------------------------------

/// Purpose:    A new internal, temporary object of `size` bytes, no pages, ref_count 1.
/// Results:    never fails (objects cost no frames).
VmObject* vm_object_allocate(VmSystem& sys, uint64_t size);

/// Add one counted reference. Conditions: object alive.
void vm_object_reference(VmObject* object);

/// Purpose:    Drop one reference; when the last goes, keep a persistent object with
///             resident pages in the cache (trimming the cache to its bound), or terminate
///             the object and release its reference on its shadow, repeating down the
///             chain (Mach's loop).
/// Conditions: entry: object referenced (or null: no-op).
void vm_object_deallocate(VmSystem& sys, VmObject* object);

/// Purpose:    Destroy an unreferenced object: clear its shadow's copy pointer if it is
///             that copy, return dirty and precious pages of permanent objects to their
///             pager (memory_object_data_return), free every page (removing their
///             mappings), tell the pager (memory_object_terminate), leave the cache. The
///             shadow reference is NOT released (the caller does, as in Mach).
/// Conditions: ref_count == 0; no copy object (a copy holds a reference).
void vm_object_terminate(VmSystem& sys, VmObject* object);

/// Purpose:    Point object's shadow at `shadow` (or nothing), moving object from its old
///             shadow's shadower list to the new one's. Offsets and references are the
///             caller's business. Every change of VmObject::shadow goes through here.
void vm_object_set_shadow(VmObject* object, VmObject* shadow);

/// Purpose:    The object has just lost a reference and is still referenced. When every
///             remaining reference is a shadower's (ref_count == shadowers.size()): with
///             one shadower, collapse the object into it (vm_object_collapse of the
///             shadower); if the object is still there, free each page that every shadower
///             hides — outside the shadower's window [shadow_offset, shadow_offset + size)
///             or under a resident page of the shadower. Nothing a task can read changes.
/// Conditions: entry: object alive, ref_count > 0; no page busy but a fault's result page
///             (which is never in a shadow-only object: an entry maps its object); never
///             inside a collapse step (vm_object_collapse calls it once its loop is done,
///             for the objects whose shadowers changed). The object may be destroyed on
///             return.
/// Tunables:   shadow_reclaim_allowed (and collapse_allowed, bypass_allowed).
/// Counters:   deallocate_collapses, hidden_pages_freed.
void vm_object_shadow_reclaim(VmSystem& sys, VmObject* object);

/// A window [start, end) of an object (by id) that a map entry or a copy-handle entry sees.
struct ObjectWindow {
  uint64_t object_id = 0;
  uint64_t start = 0, end = 0;
};

/// Purpose:    Free the resident pages that no referrer of their object can see, for
///             objects that have shadowers and whose every reference is accounted for:
///             ref_count == (windows naming it) + shadowers.size(). A page is seen when a
///             window holds its offset, or a shadower's window holds it and the shadower has
///             no resident page there. `windows` lists every map entry and copy-handle entry
///             (the caller, which owns the maps and handles, gathers them; any order).
///             Nothing a task can read changes (see vm_object.cc, "Shadow-only objects").
///             Objects without shadowers keep Mach's rule (vm_map_entry_delete frees the
///             removed range when ref_count == 1).
/// Conditions: between ops: no page busy, no fault in progress.
/// Tunables:   shadow_reclaim_allowed. Counters: hidden_pages_freed.
void vm_object_reclaim_unseen(VmSystem& sys, std::vector<ObjectWindow>& windows);

/// Purpose:    Free page p of a shadow-only object (ref_count == shadowers.size()) if every
///             shadower hides its offset. Results: true when p was freed.
/// Conditions: p not busy. Tunable: shadow_reclaim_allowed. Counter: hidden_pages_freed.
bool vm_object_free_if_hidden(VmSystem& sys, VmPage* p);

/// Purpose:    Make `*object` (its window [*offset, *offset + length)) copy-on-write behind
///             a new shadow: on return *object is a new object of `length` bytes shadowing
///             the old one at the old offset, and *offset is 0. The caller's reference moves
///             to the shadow pointer.
/// Conditions: *object referenced. Counters: shadows.
void vm_object_shadow(VmSystem& sys, VmObject** object, uint64_t* offset, uint64_t length);

/// Purpose:    Copy for fork(COPY) and copyin without blocking (Mach's
///             vm_object_copy_temporary). Null: nothing to do. A temporary object with
///             use_shared_copy: asymmetric (copy_delayed), *object becomes the copy object,
///             *src_needs_copy false, *dst_needs_copy true. Other temporary objects:
///             symmetric, ref_count++, shadowed, both need copy.
/// Results:    false for permanent objects (the caller uses vm_object_copy_strategically).
/// Counters:   copies_symmetric (and those of copy_delayed).
bool vm_object_copy_temporary(VmSystem& sys, VmObject** object, bool* src_needs_copy,
                              bool* dst_needs_copy);

/// Purpose:    Asymmetric copy of src: returns a (referenced) copy object C with
///             C.shadow == src, C.shadow_offset == 0, src.copy == C. Reuses src's current
///             copy object if it never received a page; otherwise the old copy object is
///             made to shadow the new one. Every resident page of src is write-protected in
///             every pmap.
/// Conditions: src referenced. Counters: copies_delayed, copy_object_reuses.
VmObject* vm_object_copy_delayed(VmSystem& sys, VmObject* src);

/// Results of vm_object_collapse (callers behave the same for each).
enum class CollapseResult : uint8_t { Nothing, Collapsed, Bypassed, Refused };

/// Purpose:    Shorten object's shadow chain, link by link: collapse the backing object B
///             when object holds its only reference (pages object can see and lacks move
///             up, the rest are freed, B is destroyed), or bypass B when object already
///             supplies every page of B it can see. Repeats down the chain; a link that
///             can be neither collapsed nor bypassed is stepped over (B becomes the parent
///             of the next link, as XNU does), so links below a shared object are taken too.
/// Conditions: entry: object referenced; exit: every byte seen through object unchanged.
///             never: allocates a frame.
///             Afterwards, objects whose shadowers now see less of them (bypassed ones,
///             and the new backing object of a collapse) go through
///             vm_object_shadow_reclaim.
/// Results:    Collapsed or Bypassed if any link was taken (the last such step), else
///             Refused if a link was refused, else Nothing.
///             Tunables: collapse_allowed, bypass_allowed.
/// Counters:   collapses, bypasses, collapse_pages_moved.
CollapseResult vm_object_collapse(VmSystem& sys, VmObject* object);

/// Purpose:    Try to extend prev_object (mapped at prev_offset for prev_size) to also
///             cover next_size more bytes for a new adjacent allocation (next_object must be
///             null: a fresh zero range). Stale pages in the new range are removed.
/// Results:    true when the caller may extend the previous entry.
bool vm_object_coalesce(VmSystem& sys, VmObject* prev_object, VmObject* next_object,
                        uint64_t prev_offset, uint64_t next_offset, uint64_t prev_size,
                        uint64_t next_size);

/// Free every resident page of object in [start, end) (removing their mappings).
void vm_object_page_remove(VmSystem& sys, VmObject* object, uint64_t start, uint64_t end);

/// Purpose:    Reduce mappings of object's window [offset, offset + size) to prot: in `pmap`
///             at va (per page or per range, whichever is cheaper), or in every pmap when
///             pmap is null. With prot NONE the shadow chain is followed too.
void vm_object_pmap_protect(VmSystem& sys, VmObject* object, uint64_t offset, uint64_t size,
                            pmap::pmap_t pmap, uint64_t va, vm_prot_t prot);

/// Remove every mapping (all pmaps) of the pages of object and its shadow chain that are
/// visible in [start, end) (Mach's vm_object_pmap_remove, with the 2025 chain walk).
void vm_object_pmap_remove(VmSystem& sys, VmObject* object, uint64_t start, uint64_t end);

/// Purpose:    Mach's vm_object_page_map: make the pages of [offset, offset + size) of
///             object private, wired pages whose frames are the device frames
///             map_fn(offset) names (device memory of a device pager). A page already
///             there is freed first. The pages are on no paging queue: pageout never
///             takes them, and freeing them never releases their frames.
/// Conditions: offset and size page-aligned; map_fn names a device frame for each page.
/// Counters:   device_pages_mapped.
void vm_object_page_map(VmSystem& sys, VmObject* object, uint64_t offset, uint64_t size,
                        const std::function<machine::pfn_t(uint64_t)>& map_fn);

/// Purpose:    Append to `out` the offsets, relative to `offset`, in [offset, offset + size)
///             where some object of `object`'s chain holds a resident page or pager data
///             (unsorted, with duplicates). Every other offset reads zero through the chain
///             (or fails, for a destroyed memory object). A null object is an empty chain.
/// Results:    false, with `out` partly filled, when `plain_data_only` and the chain holds
///             an object whose reads are not plain data (a destroyed memory object, or an
///             external manager that may lock pages or expect their return); else true.
bool vm_object_chain_offsets(const VmObject* object, uint64_t offset, uint64_t size,
                             bool plain_data_only, std::vector<uint64_t>& out);

/// The pager's data for (object, offset), or nullptr (no pager, or data_unavailable).
const uint8_t* vm_object_pager_data(const VmObject* object, uint64_t offset);

/// Give an internal object a default pager (on its first pageout; Mach's
/// vm_object_pager_create). Counters: pagers_created.
void vm_object_pager_create(VmSystem& sys, VmObject* object);

/// What supplies offset `offset` of `object` without side effects: the resident page or
/// the pager's data, the depth (0 = object itself) and object where it was found; page and
/// data both null = zero-fill.
struct ChainLookup {
  const VmPage* page = nullptr;
  const uint8_t* data = nullptr;     // paged out: the pager's copy (page is null)
  const VmObject* object = nullptr;  // object holding the page, or the chain's bottom
  uint64_t offset = 0;               // offset in that object
  unsigned depth = 0;
  bool lost = false;                 // the chain reached a destroyed memory object
};
ChainLookup vm_object_chain_lookup(const VmObject* object, uint64_t offset);

/// Remove an unreferenced object from the cache (vm_object_enter found it again, or it is
/// being destroyed). Conditions: object is cached.
void vm_object_cache_remove(VmSystem& sys, VmObject* object);

}  // namespace vmfuzz::vm
