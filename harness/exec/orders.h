// orders.h — the all-orders (Line-Up) cross-check of the linearization oracle.
//
// The executor's `linearization` oracle applies each kernel thread's run to the model at
// the point where the VM reports it. This check trusts no reported point: for a block of
// concurrent work it tries every order the block's windows allow through the sequential
// model, and asks whether one of them gives every result the VM gave. If the executor
// placed a run at a wrong point and so agreed with a wrong result, no order explains the
// block and the check says so (oracle `orders`, docs/oracles.md).
//
// Terms (docs/concurrency.md §The all-orders check):
//   block     the work from the moment an access goes in flight while none is, to the
//             moment no access is in flight again (all completed or aborted).
//   fixed op  an op of the block that runs within one program step: every op that is no
//             schedule op, and the model's side of a `reply ... unavailable` (the manager
//             forgets the page: manager_write of zeros). Fixed ops keep their order.
//   page op   one page of one access that went in flight: the part of the access inside
//             one page (the unit of atomicity), with what the VM moved there, or the
//             page at which it stopped with its code. A page op may take any place
//             between its access's start and its end (completion or abort), after the
//             page ops of the same access at lower addresses.
//   An order is a sequence of all fixed ops and page ops respecting those rules. A block
//   is judged when it has at most kOrdersMaxPageOps page ops.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reference_model/model.h"
#include "vmfuzz/vocab.h"

namespace vmfuzz::harness {

/// Blocks with more page ops than this are not judged (Line-Up's bound: every order of
/// at most 4 concurrent ops).
inline constexpr unsigned kOrdersMaxPageOps = 4;
/// Search nodes (model steps tried) per block before it is given up as not judged.
inline constexpr uint64_t kOrdersMaxNodes = 200000;

/// One unit of a block, with the result the VM gave for it.
struct OrderUnit {
  Op op;                      // the op, or for a page op the access narrowed to its page
  std::vector<uint8_t> data;  // write, object, manager_write data (materialized)
  OpResult vm;                // what the VM returned for it
  bool stated = false;        // page op the manager's data_error failed: no model effect
  // A vm_write that went in flight is two units: its start takes the handle (a fixed op,
  // `take_handle`), its completion overwrites with it (`handle`: the model's handle taken
  // at that start; the unit's window is that of the kernel op).
  bool take_handle = false;
  std::shared_ptr<const model::CopyHandle> handle;
  // Page ops only: its access (index), and its window in fixed-op gaps: it may be placed
  // after `lo` and before `hi + 1` fixed ops of the block have run.
  int access = -1;
  unsigned lo = 0, hi = 0;
};

struct OrdersVerdict {
  bool judged = false;  // false: too many page ops or nodes, or a result the check cannot state
  bool ok = true;       // judged: some order gives every VM result
  uint64_t nodes = 0;   // model steps tried
  std::string detail;   // when !ok or !judged: why
};

/// Purpose:    The all-orders check of one block: from `start` (the model just before
///             the block), is there an order of `fixed` (kept in order) and `pages`
///             (each within its window, each access's page ops in address order) in
///             which every unit's model result equals the VM's?
/// Conditions: pages of one access are listed in address order; lo <= hi <= fixed.size().
OrdersVerdict check_orders(const model::Model& start, const std::vector<OrderUnit>& fixed,
                           const std::vector<OrderUnit>& pages);

/// Purpose:    Split what the VM did for one in-flight access into its page ops: the
///             access `op` (with data), what it moved in total (`moved`: bytes, final kr
///             and fault address), whether it completed, and whether a data_error
///             stopped it (the page op at its stop is then `stated`).
std::vector<OrderUnit> page_ops(const Op& op, const std::vector<uint8_t>& data, const OpResult& moved,
                                bool completed, bool data_error);

/// One line for a unit: "write t0 0x40000 \"ab\" (page op of access 1, window 0..2): vm KERN_SUCCESS".
std::string describe_unit(const OrderUnit& u);

}  // namespace vmfuzz::harness
