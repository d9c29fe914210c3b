// dot.cc — the kernel's explanations and VM-only oracles (theory of operation in dot.h).
#include "harness/exec/dot.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <set>

#include "harness/lang/text.h"
#include "reference_model/model.h"
#include "vm/kernel.h"

namespace vmfuzz::harness {

namespace {

const char* inherit_name(vm_inherit_t i) {
  switch (i) {
    case vm_inherit_t::Share: return "share";
    case vm_inherit_t::Copy: return "copy";
    case vm_inherit_t::None: return "none";
  }
  return "?";
}

const char* strategy_name(CopyStrategy s) {
  switch (s) {
    case CopyStrategy::None: return "none";
    case CopyStrategy::Call: return "call";
    case CopyStrategy::Delay: return "delay";
  }
  return "?";
}

std::string object_flags(const vm::ObjectInfo& o) {
  std::string f;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!f.empty()) f += ' ';
    f += name;
  };
  add(o.internal, "internal");
  add(o.temporary, "temporary");
  add(o.shadowed, "shadowed");
  add(o.use_shared_copy, "use_shared_copy");
  add(o.can_persist, "can_persist");
  add(o.pager_created, "pager_created");
  add(o.paging_in_progress != 0, "paging");
  return f;
}

// The object ids on the chain from `top` down (top first), stopping at a repeat.
std::vector<uint64_t> chain_of(const std::map<uint64_t, vm::ObjectInfo>& objs, uint64_t top) {
  std::vector<uint64_t> chain;
  std::set<uint64_t> seen;
  for (uint64_t id = top; id != 0 && !seen.count(id);) {
    seen.insert(id);
    chain.push_back(id);
    auto it = objs.find(id);
    if (it == objs.end()) break;
    id = it->second.shadow;
  }
  return chain;
}

}  // namespace

std::string describe_provenance(const vm::Kernel& k, unsigned t, uint64_t va) {
  if (!k.task_exists(t)) return "task t" + std::to_string(t) + " does not exist in the VM";
  vm::Provenance p = k.provenance(t, va);
  std::string where = "t" + std::to_string(t) + " " + hex_addr(va) + ": ";
  // An if-chain, not a switch: the VM may add kinds of provenance, and an explanation
  // must keep compiling (and say "kind N") when it does.
  using Kind = vm::Provenance::Kind;
  if (p.kind == Kind::Unmapped) return where + "no entry (unmapped)";
  if (p.kind == Kind::NoObject) return where + "entry has no object yet (zero memory)";
  std::string s = where + "object " + std::to_string(p.object) + " at depth " + std::to_string(p.depth) +
                  " of the entry's chain, offset " + hex_addr(p.offset) + ", ";
  if (p.kind == Kind::Resident) {
    s += "resident in frame " + std::to_string(p.frame);
    if (p.frame >= k.machine().memory().device_base()) s += " (device memory)";
  }
  else if (p.kind == Kind::PagedOut) s += "paged out (held by the object's pager)";
  else if (p.kind == Kind::ZeroFill) s += "not resident anywhere in the chain (zero-fill or the pager's data)";
  else s += "provenance kind " + std::to_string(static_cast<unsigned>(p.kind));
  if (p.needs_copy) s += "; entry needs_copy";
  if (auto o = k.object_info(p.object))
    s += "; object ref_count " + std::to_string(o->ref_count) + ", " + std::to_string(o->resident_page_count) +
         " resident";
  return s;
}

std::string describe_object_provenance(const vm::Kernel& k, unsigned m, uint64_t offset) {
  const vm::ManagerPager* mo = k.memory_object(m);
  std::string where = "m" + std::to_string(m) + " offset " + hex_addr(offset) + ": ";
  if (!mo) return where + "no such memory object in the VM";
  if (mo->destroyed) return where + "destroyed by its manager";
  if (!mo->kobject) return where + "no kernel object (the manager's store alone holds the byte)";
  uint64_t id = mo->kobject->id;
  std::string s = where + "kernel object " + std::to_string(id);
  if (auto o = k.object_info(id)) {
    bool resident = false, device = false;
    for (const auto& pg : o->pages)
      if (pg.offset == trunc_page(offset)) resident = true, device = pg.device;
    if (mo->is_device())
      s += device ? ", device page mapped (vm_object_page_map): the device memory is the store"
                  : ", device page not mapped in the object (a fault maps it)";
    else
      s += resident ? ", page resident (the store may be stale until it is returned)"
                    : ", page not resident (the manager's store holds it)";
    s += "; ref_count " + std::to_string(o->ref_count) + ", " + std::to_string(o->resident_page_count) +
         " resident, " + strategy_name(o->copy_strategy) + (o->can_persist ? " can_persist" : "");
  }
  return s;
}

std::string dot_graph(const vm::Kernel& k, const FailureSite& site) {
  std::map<uint64_t, vm::ObjectInfo> objs;
  for (auto& o : k.objects()) objs.emplace(o.id, o);

  // The object to highlight, and the chain above it.
  uint64_t hot = 0;
  std::set<uint64_t> hot_chain;
  std::string hot_entry;
  if (site.kind == FailureSite::Kind::TaskPage && k.task_exists(site.task)) {
    vm::Provenance p = k.provenance(site.task, site.addr);
    if (p.kind != vm::Provenance::Kind::Unmapped && p.kind != vm::Provenance::Kind::NoObject) hot = p.object;
    for (const auto& e : k.entries(site.task)) {
      if (site.addr >= e.start && site.addr < e.end && e.object) {
        for (uint64_t id : chain_of(objs, e.object)) {
          hot_chain.insert(id);
          if (id == hot) break;
        }
        hot_entry = "t" + std::to_string(site.task) + "_" + hex_addr(e.start);
      }
    }
  }

  std::string out = "digraph vm {\n  rankdir=LR;\n  node [fontname=\"monospace\", fontsize=10];\n";
  out += "  edge [fontname=\"monospace\", fontsize=9];\n";
  if (site.kind == FailureSite::Kind::ObjectPage) {
    const vm::ManagerPager* mo = k.memory_object(site.object);
    if (mo && mo->kobject) hot = mo->kobject->id;
  }
  if (site.kind == FailureSite::Kind::TaskPage)
    out += "  label=\"divergence: t" + std::to_string(site.task) + " " + hex_addr(site.addr) + "\";\n";
  if (site.kind == FailureSite::Kind::ObjectPage)
    out += "  label=\"divergence: m" + std::to_string(site.object) + " offset " + hex_addr(site.addr) + "\";\n";
  for (unsigned t : k.tasks()) {
    out += "  subgraph cluster_t" + std::to_string(t) + " {\n    label=\"t" + std::to_string(t) + "\";\n";
    for (const auto& e : k.entries(t)) {
      std::string id = "t" + std::to_string(t) + "_" + hex_addr(e.start);
      out += "    \"" + id + "\" [shape=box, label=\"" + hex_addr(e.start) + "-" + hex_addr(e.end) + "\\n" +
             format_prot(e.prot) + "/" + format_prot(e.max_prot) + " " + inherit_name(e.inherit) +
             (e.needs_copy ? " needs_copy" : "") + (e.is_shared ? " shared" : "") + "\"" +
             (id == hot_entry ? ", penwidth=3" : "") + "];\n";
    }
    out += "  }\n";
  }
  for (const auto& [id, o] : objs) {
    out += "  \"o" + std::to_string(id) + "\" [shape=ellipse, label=\"object " + std::to_string(id) + "\\nref " +
           std::to_string(o.ref_count) + ", resident " + std::to_string(o.resident_page_count) + ", size " +
           hex_addr(o.size) + "\\n" + strategy_name(o.copy_strategy) + " " + object_flags(o) + "\"";
    if (id == hot) out += ", style=filled, fillcolor=\"#ff8080\"";
    else if (hot_chain.count(id)) out += ", penwidth=3";
    out += "];\n";
  }
  for (unsigned t : k.tasks()) {
    for (const auto& e : k.entries(t)) {
      if (!e.object) continue;
      std::string id = "t" + std::to_string(t) + "_" + hex_addr(e.start);
      out += "  \"" + id + "\" -> \"o" + std::to_string(e.object) + "\" [label=\"+" + hex_addr(e.offset) + "\"" +
             (id == hot_entry ? ", penwidth=3" : "") + "];\n";
    }
  }
  for (unsigned m = 0; m < kMaxNames; m++) {
    const vm::ManagerPager* mo = k.memory_object(m);
    if (!mo) continue;
    std::string name = "m" + std::to_string(m);
    out += "  \"" + name + "\" [shape=note, label=\"" + name + " (" + (mo->is_device() ? "device, " : "") +
           strategy_name(mo->strategy()) + (mo->persist() ? ", persist" : "") +
           (mo->destroyed ? ", destroyed" : "") + ")\"];\n";
    if (mo->kobject) out += "  \"" + name + "\" -> \"o" + std::to_string(mo->kobject->id) + "\" [style=dotted];\n";
    if (!mo->requests.empty())
      out += "  \"" + name + "\" [xlabel=\"" + std::to_string(mo->requests.size()) + " request(s) in flight\"];\n";
  }
  // Kernel threads in flight (docs/concurrency.md): each points at the object it waits on.
  for (const auto& [tid, th] : k.scheduler().threads) {
    std::string name = "thread" + std::to_string(tid);
    bool blocked = th.state == vm::KThread::State::Blocked;
    const bool kop = th.kind != vm::KThread::Kind::Access;
    const char* what = th.kind == vm::KThread::Kind::VmCopy    ? "vm_copy"
                       : th.kind == vm::KThread::Kind::VmWrite ? "vm_write"
                       : th.write                              ? "write"
                                                               : "read";
    std::string label = "thread " + std::to_string(tid) + "\\n" + what +
                        " t" + std::to_string(th.task) + " " + hex_addr(kop ? th.dst : th.addr + th.done) + "\\n" +
                        (blocked ? std::string("blocked at ") + vm::yield_point_name(th.where) : std::string("runnable")) +
                        "\\nsince step " + std::to_string(th.since_step);
    out += "  \"" + name + "\" [shape=hexagon, label=\"" + label + "\"];\n";
    if (blocked && th.event.object != 0)
      out += "  \"" + name + "\" -> \"o" + std::to_string(th.event.object) + "\" [style=bold, label=\"" +
             vm::wait_event_name(th.event) + "\"];\n";
  }
  for (const auto& [id, o] : objs) {
    if (o.shadow)
      out += "  \"o" + std::to_string(id) + "\" -> \"o" + std::to_string(o.shadow) + "\" [label=\"shadow +" +
             hex_addr(o.shadow_offset) + "\"" + (hot_chain.count(id) && hot_chain.count(o.shadow) ? ", penwidth=3" : "") +
             "];\n";
    if (o.copy)
      out += "  \"o" + std::to_string(id) + "\" -> \"o" + std::to_string(o.copy) +
             "\" [style=dashed, label=\"copy\"];\n";
  }
  out += "}\n";
  return out;
}

}  // namespace vmfuzz::harness
