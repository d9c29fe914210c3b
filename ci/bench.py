#!/usr/bin/env python3
"""bench — run vmfuzz's benchmarks and print their figures as ratios (standard library only).

Theory of operation
-------------------
`ci/vmfuzz bench` imports this module and calls `main(root, args)`; `python3 ci/bench.py
[--json] [--filter RE]` does the same from the command line. Steps:

1. Build the `release` preset's benchmark programs (configure first if the build tree
   does not exist): bench/vm_bench.cc and bench/harness_bench.cc, g++ -O2 -DNDEBUG.
2. Run each with --benchmark_format=json (and --benchmark_filter=RE when given) and read
   its counters (the programs report per-item quantities, never rates).
3. The sanitized figure: the `fuzz` preset's vm_diff_fuzzer (clang, libFuzzer,
   ASan+UBSan), built if missing, runs with -runs=N over a temporary copy of
   corpus/vm_diff and over the 64-op random programs that vmfuzz_harness_bench writes
   (--vmfuzz_write_programs=DIR); exec/s = stat::number_of_executed_units over the
   child's CPU seconds (and over wall seconds, reported beside). The copies keep
   libFuzzer from writing into corpus/; artifacts go to the temporary directory.
4. Figures are formed as ratios of measurements taken in the same process run, then
   printed as one table (name, value, unit, target, verdict) or, with --json, exactly
   `{"figures": {NAME: NUMBER}}` (docs/ARCHITECTURE.md, "Contracts scripts rely on").

Time basis: CPU time of the measuring thread (or child process) everywhere, because the
machines this runs on are shared (other builds preempt us; wall time would measure the
load). Wall-time ratios of the COW figures are reported beside them as *_wall.

The filter is a regular expression searched in benchmark names (Google Benchmark's
--benchmark_filter) and in the pseudo-names `Sanitized/Corpus`, `Sanitized/Random64`,
`Sanitized/Random64Replay`, `Sanitized/LinuxCorpus` of the fuzzer runs, and
`Campaign/PeakRss`: with --minutes M, a sanitized vm_diff campaign of M minutes over a
copy of corpus/vm_diff whose peak RSS (the child's own ru_maxrss, from wait4) is reported
against the bound of 512 MiB (issue 18 asks it of a 10-minute campaign). The last is the
linux_diff target (the model against the Linux kernel, issue 16) over corpus/linux_diff,
side by side with vm_diff over the same seeds; its time basis is wall time, because most
of its work runs in helper processes whose CPU time the kernel does not charge to us. Figures whose inputs were filtered out are
omitted. Exit codes: 0 all requested measurements ran; 1 a measurement failed (what ran
is still printed); 2 a build failed or a tool is missing (one line says what to do).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vmfuzzlib as lib  # noqa: E402  (ci/vmfuzzlib.py: the one build helper)

sys.path.pop(0)

VM_BENCH = "vmfuzz_vm_bench"
HARNESS_BENCH = "vmfuzz_harness_bench"
SANITIZED_RUNS = 4000          # libFuzzer -runs for each fuzzing-mode measurement
REPLAY_RUNS_PER_FILE = 5       # individual-file mode: each 64-op program run this often
SIZES_MIB = (1, 4, 16, 64, 256, 1024)
DENSE_CAP_MIB = 64

# Targets of issue 9 (name -> (comparison, bound)); the verdict column is derived from them.
TARGETS = {
    "cow_sim_over_linux": ("<=", 0.25),
    "cow_sim_over_memcpy": ("<=", 1.5),
    "exec_sanitized_random64_per_s": (">=", 10000.0),
    "exec_sanitized_linux_corpus_per_wall_s": (">=", 200.0),
    "campaign_peak_rss_mib": ("<", 512.0),
    "garbage_fork_heavy_pct": ("<", 5.0),
    "garbage_copy_heavy_pct": ("<", 5.0),
    "garbage_fork_heavy_worst_pct": ("<", 5.0),
    "garbage_copy_heavy_worst_pct": ("<", 5.0),
}


class BenchError(Exception):
    """A step failed; `code` is the exit code to return (2: build/tool, 1: measurement)."""

    def __init__(self, msg: str, code: int = 1):
        super().__init__(msg)
        self.code = code


def note(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def ensure_preset_targets(preset: str, targets: list) -> Path:
    """Build `targets` of `preset` with the driver's one build helper, its output on stderr
    (stdout stays clean for --json). Returns the tree."""
    try:
        return lib.ensure_built(preset, targets, show="stderr")
    except lib.CommandFailed as e:
        raise BenchError(str(e), 2) from e
    except lib.MissingTool as e:
        raise BenchError(str(e), 2) from e


# ---------------------------------------------------------------------------------------
# Google Benchmark programs

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def run_benchmark(binary: Path, flt: str | None) -> dict:
    """Run one benchmark program; returns {name: entry} from its JSON (entry: the raw dict)."""
    cmd = [str(binary), "--benchmark_format=json"]
    if flt:
        cmd.append(f"--benchmark_filter={flt}")
    note("+ " + " ".join(cmd))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if flt and "Failed to match any benchmarks" in proc.stderr:
        return {}  # the filter selects nothing in this program: not an error
    if proc.returncode != 0:
        raise BenchError(f"{binary.name} exited with {proc.returncode}: {proc.stderr.strip()[-400:]}")
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise BenchError(f"{binary.name}: unreadable JSON output ({e})") from e
    out = {}
    for b in data.get("benchmarks", []):
        if b.get("run_type", "iteration") == "iteration" and "error_occurred" not in b:
            out[b["name"]] = b
    ctx = data.get("context", {})
    if ctx:
        note(f"{binary.name}: {ctx.get('num_cpus')} CPUs, load average {ctx.get('load_avg')}")
    return out


def find(results: dict, prefix: str) -> dict | None:
    """The entry whose name is `prefix` followed by nothing or by '/iterations:...' etc."""
    for name, b in results.items():
        if name == prefix or name.startswith(prefix + "/"):
            return b
    return None


def cpu_ns(b: dict) -> float:
    """CPU time per iteration in ns (for benchmarks timed by the library itself)."""
    return float(b["cpu_time"]) * UNIT_NS[b.get("time_unit", "ns")]


# ---------------------------------------------------------------------------------------
# The sanitized run

STAT_RE = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)


def child_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_fuzzer(fuzzer: Path, args: list, workdir: Path) -> tuple:
    """Run vm_diff_fuzzer; returns (output text, exit code, cpu seconds, wall seconds)."""
    cmd = [str(fuzzer), *args]
    shown = cmd if len(cmd) <= 12 else cmd[:8] + [f"... ({len(cmd) - 8} more arguments)"]
    note("+ " + " ".join(shown))
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    c0, w0 = child_cpu_seconds(), time.monotonic()
    proc = subprocess.run(cmd, cwd=str(workdir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", env=env)
    c1, w1 = child_cpu_seconds(), time.monotonic()
    return proc.stdout, proc.returncode, c1 - c0, w1 - w0


def fuzzing_mode(fuzzer: Path, corpus_src: list, workdir: Path, label: str) -> dict:
    """libFuzzer fuzzing mode, -runs=SANITIZED_RUNS over a copy of the inputs."""
    cdir = workdir / f"corpus-{label}"
    cdir.mkdir()
    max_len = 0
    for f in corpus_src:
        shutil.copyfile(f, cdir / f.name)
        max_len = max(max_len, f.stat().st_size)
    text, rc, cpu, wall = run_fuzzer(
        fuzzer,
        [f"-runs={SANITIZED_RUNS}", "-seed=1", "-print_final_stats=1", f"-max_len={max_len}",
         f"-artifact_prefix={workdir}/", str(cdir)],
        workdir)
    stats = {k: int(v) for k, v in STAT_RE.findall(text)}
    units = stats.get("number_of_executed_units")
    if units is None:
        raise BenchError(f"vm_diff_fuzzer ({label}) printed no stat::number_of_executed_units "
                         f"(exit {rc}); last lines:\n" + "\n".join(text.splitlines()[-15:]))
    if rc != 0:
        note(f"vm_diff_fuzzer ({label}) stopped with exit {rc} after {units} runs "
             "(a finding: see ci/vmfuzz fuzz); the figure counts the runs done")
    return {"units": units, "cpu": cpu, "wall": wall, "rc": rc}


def replay_mode(fuzzer: Path, files: list, workdir: Path) -> dict:
    """Individual-file mode: each file run REPLAY_RUNS_PER_FILE times, no mutation."""
    text, rc, cpu, wall = run_fuzzer(fuzzer, [f"-runs={REPLAY_RUNS_PER_FILE}", *map(str, files)], workdir)
    done = len(re.findall(r"^Executed ", text, re.M))
    if rc != 0 and done == 0:
        raise BenchError(f"vm_diff_fuzzer replay exited with {rc}; last lines:\n"
                         + "\n".join(text.splitlines()[-15:]))
    return {"units": done * REPLAY_RUNS_PER_FILE, "cpu": cpu, "wall": wall, "rc": rc}


def sanitized(root: Path, harness_bin: Path, wanted) -> dict:
    """The fuzz preset's vm_diff_fuzzer over the corpus and over the 64-op programs."""
    out = {}
    names = ("Sanitized/Corpus", "Sanitized/Random64", "Sanitized/Random64Replay", "Sanitized/LinuxCorpus")
    if not any(wanted(n) for n in names):
        return out
    if shutil.which("clang++") is None:
        raise BenchError("clang++ not found (the fuzz preset needs it); install it with: "
                         "sudo apt-get install -y clang libclang-rt-14-dev", 2)
    targets = ["vm_diff_fuzzer"] + (["linux_diff_fuzzer", "vmfuzz-linux-task"] if wanted("Sanitized/LinuxCorpus") else [])
    bdir = ensure_preset_targets("fuzz", targets)
    fuzzer = bdir / "fuzz" / "vm_diff" / "vm_diff_fuzzer"
    if not fuzzer.exists():
        raise BenchError(f"{fuzzer} was not built", 2)
    with tempfile.TemporaryDirectory(prefix="vmfuzz-bench-") as tmp:
        work = Path(tmp)
        if wanted("Sanitized/Corpus"):
            corpus = sorted((root / "corpus" / "vm_diff").glob("*.bin"))
            if not corpus:
                raise BenchError("corpus/vm_diff holds no .bin file")
            out["corpus"] = fuzzing_mode(fuzzer, corpus, work, "corpus")
        if wanted("Sanitized/Random64") or wanted("Sanitized/Random64Replay"):
            pdir = work / "random64"
            proc = subprocess.run([str(harness_bin), f"--vmfuzz_write_programs={pdir}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                raise BenchError(f"{harness_bin.name} could not write the programs: {proc.stderr.strip()}")
            progs = sorted(pdir.glob("*.bin"))
            if wanted("Sanitized/Random64"):
                out["random64"] = fuzzing_mode(fuzzer, progs, work, "random64")
            if wanted("Sanitized/Random64Replay"):
                out["random64_replay"] = replay_mode(fuzzer, progs, work)
        if wanted("Sanitized/LinuxCorpus"):
            seeds = sorted((root / "corpus" / "linux_diff").glob("*.bin"))
            linux_fuzzer = bdir / "fuzz" / "linux_diff" / "linux_diff_fuzzer"
            if not seeds or not linux_fuzzer.exists():
                raise BenchError("corpus/linux_diff or linux_diff_fuzzer is missing", 2)
            out["linux_corpus"] = fuzzing_mode(linux_fuzzer, seeds, work, "linux_corpus")
            out["vm_on_linux_corpus"] = fuzzing_mode(fuzzer, seeds, work, "vm_on_linux_corpus")
    return out


def campaign(root: Path, minutes: float) -> dict:
    """A vm_diff campaign of `minutes` (fuzz preset, from a copy of corpus/vm_diff, -seed=1):
    the child's peak RSS (getrusage of that child: ru_maxrss), and libFuzzer's own last rss."""
    bdir = ensure_preset_targets("fuzz", ["vm_diff_fuzzer"])
    fuzzer = bdir / "fuzz" / "vm_diff" / "vm_diff_fuzzer"
    seeds = sorted((root / "corpus" / "vm_diff").glob("*.bin"))
    with tempfile.TemporaryDirectory(prefix="vmfuzz-campaign-") as tmp:
        work = Path(tmp)
        cdir = work / "corpus"
        cdir.mkdir()
        for f in seeds:
            shutil.copyfile(f, cdir / f.name)
        cmd = [str(fuzzer), f"-max_total_time={max(1, int(minutes * 60))}", "-seed=1", "-print_final_stats=1",
               f"-artifact_prefix={work}/", str(cdir)]
        note("+ " + " ".join(cmd))
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        proc = subprocess.Popen(cmd, cwd=str(work), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", env=env)
        text = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (ru_maxrss: KiB)
        proc.returncode = os.waitstatus_to_exitcode(status)
    stats = {k: int(v) for k, v in STAT_RE.findall(text)}
    if "number_of_executed_units" not in stats:
        raise BenchError(f"vm_diff_fuzzer campaign printed no final stats (exit {proc.returncode}); last lines:\n"
                         + "\n".join(text.splitlines()[-15:]))
    if proc.returncode != 0:
        note(f"vm_diff_fuzzer campaign stopped with exit {proc.returncode} (a finding: see ci/vmfuzz fuzz)")
    return {"rc": proc.returncode, "units": stats["number_of_executed_units"],
            "peak_rss_mib": usage.ru_maxrss / 1024.0, "libfuzzer_peak_rss_mb": stats.get("peak_rss_mb"),
            "minutes": minutes}


# ---------------------------------------------------------------------------------------
# Figures

def figures_from(vm: dict, hb: dict, san: dict) -> tuple:
    """(figures {name: number}, rows [(name, value, unit, note)]) from the raw results."""
    fig: dict = {}
    rows: list = []

    def put(name, value, unit, what):
        if value is None:
            return
        fig[name] = round(float(value), 4)
        rows.append((name, fig[name], unit, what))

    def counter(results, prefix, key):
        b = find(results, prefix)
        return None if b is None or key not in b else float(b[key])

    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    # COW fault, zero-fill fault, memcpy (CPU ns per page; wall beside).
    sim = counter(vm, "BM_CowFault/Sim/4096", "ns_per_page")
    lin = counter(vm, "BM_CowFault/Linux/4096", "ns_per_page")
    cold = counter(vm, "BM_Memcpy4K/Cold/1/4096", "ns_per_page")
    hot = counter(vm, "BM_Memcpy4K/Hot/0/4096", "ns_per_page")
    put("cow_fault_sim_ns", sim, "ns/page", "simulated COW fault (child write after fork)")
    put("cow_fault_linux_ns", lin, "ns/page", "Linux COW fault on this host")
    put("memcpy_4k_cold_ns", cold, "ns/page", "4 KiB memcpy over the faults' working set")
    put("memcpy_4k_hot_ns", hot, "ns/page", "4 KiB memcpy, same page (L1)")
    put("cow_sim_over_linux", ratio(sim, lin), "ratio", "simulated / Linux COW fault")
    put("cow_sim_over_memcpy", ratio(sim, cold), "ratio", "simulated COW fault / cold 4 KiB memcpy")
    put("cow_sim_over_linux_wall", ratio(counter(vm, "BM_CowFault/Sim/4096", "wall_ns_per_page"),
                                         counter(vm, "BM_CowFault/Linux/4096", "wall_ns_per_page")),
        "ratio", "the same in wall time")
    put("cow_sim_over_memcpy_wall", ratio(counter(vm, "BM_CowFault/Sim/4096", "wall_ns_per_page"),
                                          counter(vm, "BM_Memcpy4K/Cold/1/4096", "wall_ns_per_page")),
        "ratio", "the same in wall time")
    zs = counter(vm, "BM_ZeroFill/Sim/4096", "ns_per_page")
    zl = counter(vm, "BM_ZeroFill/Linux/4096", "ns_per_page")
    put("zero_fill_sim_ns", zs, "ns/page", "simulated zero-fill fault (first touch)")
    put("zero_fill_linux_ns", zl, "ns/page", "Linux zero-fill fault on this host")
    put("zero_fill_sim_over_linux", ratio(zs, zl), "ratio", "simulated / Linux zero-fill fault")

    # MMU throughput (CPU ns per 8-byte access).
    for group, label in (("BM_Mmu", "mmu"), ("BM_KernelRead", "kernel_read")):
        for kind, arg in (("Hit", 8), ("Miss", 4096)):
            b = find(vm, f"{group}/{kind}/{arg}")
            if b is not None:
                put(f"{label}_{kind.lower()}_ns", cpu_ns(b) / float(b["accesses"]), "ns/access",
                    f"8-byte load, TLB {kind.lower()} (hit rate {float(b['hit_rate']):.2f})"
                    + (" via Kernel::read" if label == "kernel_read" else " via Machine::load"))
    put("mmu_miss_over_hit", ratio(fig.get("mmu_miss_ns"), fig.get("mmu_hit_ns")), "ratio",
        "TLB miss (4-level walk) / TLB hit")

    # fork and vm_copy against size.
    for op, bname in (("fork", "BM_Fork"), ("vm_copy", "BM_VmCopy")):
        for side in ("VM", "Model"):
            for dense in (0, 1):
                for mib in SIZES_MIB:
                    if dense and mib > DENSE_CAP_MIB:
                        continue
                    v = counter(vm, f"{bname}/{side}/MiB:{mib}/dense:{dense}", "ns_per_op")
                    put(f"{op}_{side.lower()}_{'dense' if dense else 'sparse'}_{mib}mib_ns", v, "ns/op",
                        f"{op} of a {mib} MiB region, {'every page' if dense else 'one page'} touched")
        for side in ("vm", "model"):
            put(f"{op}_{side}_sparse_1gib_over_1mib",
                ratio(fig.get(f"{op}_{side}_sparse_1024mib_ns"), fig.get(f"{op}_{side}_sparse_1mib_ns")),
                "ratio", f"{op} cost, 1 GiB sparse / 1 MiB sparse ({side})")
            put(f"{op}_{side}_dense_64mib_over_1mib",
                ratio(fig.get(f"{op}_{side}_dense_64mib_ns"), fig.get(f"{op}_{side}_dense_1mib_ns")),
                "ratio", f"{op} cost, 64 MiB dense / 1 MiB dense ({side}; touched pages x64)")
        put(f"{op}_model_over_vm_dense_64mib",
            ratio(fig.get(f"{op}_model_dense_64mib_ns"), fig.get(f"{op}_vm_dense_64mib_ns")),
            "ratio", f"{op}, 64 MiB dense: model / VM")

    # Harness throughput, plain (release).
    for prefix, label in (("BM_Exec/Corpus", "corpus"), ("BM_Exec/Random64/check_every:16", "random64")):
        b = find(hb, prefix)
        if b is not None:
            sec = cpu_ns(b) * 1e-9
            put(f"exec_plain_{label}_per_s", float(b["execs"]) / sec, "exec/s",
                f"vm_diff, release build, {label} ({int(float(b['failures']))} failing inputs)")
            put(f"ops_plain_{label}_per_s", float(b["ops"]) / sec, "ops/s",
                f"ops of those runs ({int(float(b['ops']))} ops)")
    b0, b1 = find(hb, "BM_Exec/Random64/check_every:0"), find(hb, "BM_Exec/Random64/check_every:1")
    if b0 is not None:
        put("op_cost_us", cpu_ns(b0) / float(b0["ops"]) / 1e3, "us/op",
            "one op through the executor, random64, full check at the end only")
    if b0 is not None and b1 is not None:
        put("full_check_per_op_us", (cpu_ns(b1) - cpu_ns(b0)) / float(b0["ops"]) / 1e3, "us/op",
            "added per op by a full check after every op")
    for kind in ("FullCheck", "Invariants", "Tlb"):
        b = find(hb, f"BM_Oracle/{kind}")
        if b is not None:
            label = {"FullCheck": "full_check", "Invariants": "invariants", "Tlb": "tlb"}[kind]
            put(f"oracle_{label}_us", cpu_ns(b) / float(b["checks"]) / 1e3, "us/call",
                f"one {kind} oracle call on a random64 end state")
    if "oracle_full_check_us" in fig and "op_cost_us" in fig:
        put("full_check_over_op", fig["oracle_full_check_us"] / fig["op_cost_us"], "ratio",
            "one full check / one op")
    if "oracle_invariants_us" in fig and "oracle_full_check_us" in fig:
        put("invariants_share_of_full_check", fig["oracle_invariants_us"] / fig["oracle_full_check_us"],
            "ratio", "invariant checkers' share of a full check")

    # Harness throughput, sanitized.
    for key, label, what in (("corpus", "corpus", "vm_diff_fuzzer, fuzzing mode over corpus/vm_diff"),
                             ("random64", "random64", "vm_diff_fuzzer, fuzzing mode over the 64-op programs"),
                             ("random64_replay", "random64_replay", "vm_diff_fuzzer, each 64-op program replayed"),
                             ("linux_corpus", "linux_corpus", "linux_diff_fuzzer (model vs Linux) over corpus/linux_diff"),
                             ("vm_on_linux_corpus", "vm_on_linux_corpus", "vm_diff_fuzzer over corpus/linux_diff")):
        r = san.get(key)
        if r:
            put(f"exec_sanitized_{label}_per_s", r["units"] / r["cpu"] if r["cpu"] > 0 else None,
                "exec/s", f"{what} (ASan+UBSan), CPU time ({r['units']} runs)")
            put(f"exec_sanitized_{label}_per_wall_s", r["units"] / r["wall"] if r["wall"] > 0 else None,
                "exec/s", "the same over wall time")
    if "exec_sanitized_random64_replay_per_s" in fig and "exec_plain_random64_per_s" in fig:
        put("sanitizer_slowdown_random64",
            fig["exec_plain_random64_per_s"] / fig["exec_sanitized_random64_replay_per_s"],
            "ratio", "plain / sanitized exec/s on the same 64-op programs")

    # Memory of a campaign (--minutes).
    c = san.get("campaign")
    if c:
        put("campaign_peak_rss_mib", c["peak_rss_mib"], "MiB",
            f"vm_diff_fuzzer (ASan+UBSan) over corpus/vm_diff for {c['minutes']:g} min: peak RSS "
            f"(getrusage of the child; {c['units']} runs)")
        put("campaign_libfuzzer_peak_rss_mb", c["libfuzzer_peak_rss_mb"], "MB", "the same as libFuzzer reports it")

    # Memory.
    for kind, label in (("ForkHeavy", "fork_heavy"), ("CopyHeavy", "copy_heavy")):
        b = find(vm, f"BM_Garbage/{kind}")
        if b is not None:
            put(f"garbage_{label}_pct", b["garbage_pct"], "%",
                f"resident frames no task can observe ({int(b['resident_frames'])} resident, "
                f"{int(b['observable_versions'])} observable)")
            put(f"garbage_{label}_worst_pct", b["garbage_pct_worst"], "%", "worst of 20 checkpoints")
            put(f"garbage_{label}_hidden_share_pct", b["garbage_hidden_by_shadowers_pct"], "%",
                "of that garbage: in objects referenced only by shadows, hidden from every shadower")
            put(f"garbage_{label}_collapsible_share_pct", b["garbage_in_collapsible_pct"], "%",
                "of that garbage: in ref_count-1 backing objects a collapse would take")
            put(f"garbage_{label}_worst_collapsible_share_pct", b["garbage_in_collapsible_worst_pct"], "%",
                "at the worst checkpoint: share of garbage in collapsible ref_count-1 objects")
            put(f"garbage_{label}_worst_hidden_share_pct", b["garbage_hidden_by_shadowers_worst_pct"], "%",
                "at the worst checkpoint: share hidden from every shadower")
            put(f"longest_chain_{label}", b["longest_chain"], "objects", "longest shadow chain at the end")
            put(f"longest_chain_{label}_worst", b["longest_chain_worst"], "objects", "worst of 20 checkpoints")
    return fig, rows


def verdict(name: str, value: float) -> tuple:
    t = TARGETS.get(name)
    if t is None:
        return "", ""
    op, bound = t
    ok = {"<=": value <= bound, ">=": value >= bound, "<": value < bound}[op]
    return f"{op} {bound:g}", "met" if ok else "MISSED"


def print_table(rows: list) -> None:
    w = max([len(r[0]) for r in rows] + [6])
    print(f"{'figure':<{w}}  {'value':>12}  {'unit':<9}  {'target':<9}  {'':<6}  meaning")
    for name, value, unit, what in rows:
        tgt, ok = verdict(name, value)
        print(f"{name:<{w}}  {value:>12.4g}  {unit:<9}  {tgt:<9}  {ok:<6}  {what}")


# ---------------------------------------------------------------------------------------
# Entry points

def main(root: Path, args) -> int:
    """Purpose: build, run, print. args: .json (bool), .filter (regex string or None)."""
    root = Path(root)
    flt = getattr(args, "filter", None)
    try:
        rx = re.compile(flt) if flt else None
    except re.error as e:
        print(f"bench: error: bad --filter regular expression: {e}", file=sys.stderr)
        return 2

    def wanted(name: str) -> bool:
        return rx is None or rx.search(name) is not None

    code = 0
    vm, hb, san = {}, {}, {}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        import progress as progress_mod  # ci/progress.py
    finally:
        sys.path.pop(0)
    # On stderr (stdout is the table or the JSON); rough weights in seconds.
    # Plain lines: the builds print on stderr between the steps.
    progress = progress_mod.Progress(4, "bench", total_weight=60 + 60 + 60 + 40, tty=False)
    try:
        progress.step("building the release benchmarks", 60)
        bdir = ensure_preset_targets("release", [VM_BENCH, HARNESS_BENCH])
        vm_bin, hb_bin = bdir / "bench" / VM_BENCH, bdir / "bench" / HARNESS_BENCH
        for binary, sink in ((vm_bin, vm), (hb_bin, hb)):
            progress.step(f"running {binary.name}", 60)
            try:
                sink.update(run_benchmark(binary, flt))
            except BenchError as e:
                note(f"error: {e}")
                code = max(code, e.code)
        progress.step("sanitized exec/s (vm_diff_fuzzer)", 40)
        try:
            san = sanitized(root, hb_bin, wanted)
        except BenchError as e:
            note(f"error: sanitized run: {e}")
            code = max(code, e.code)
        minutes = getattr(args, "minutes", None) or 0
        if minutes > 0 and wanted("Campaign/PeakRss"):
            note(f"a {minutes:g}-minute vm_diff campaign for its peak RSS")
            try:
                san["campaign"] = campaign(root, minutes)
            except BenchError as e:
                note(f"error: campaign: {e}")
                code = max(code, e.code)
    except BenchError as e:
        progress.finish()
        print(f"bench: error: {e}", file=sys.stderr)
        return e.code
    progress.finish("measured")
    fig, rows = figures_from(vm, hb, san)
    if getattr(args, "json", False):
        print(json.dumps({"figures": fig}, sort_keys=True))
    else:
        print_table(rows)
    return code


def parse_args(argv: list) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.py", description="Run vmfuzz's benchmarks; print the figures.")
    p.add_argument("--json", action="store_true", help='print {"figures": {NAME: NUMBER}} only')
    p.add_argument("--filter", default=None, metavar="RE",
                   help="run only benchmarks whose names match RE (also Sanitized/..., Campaign/PeakRss)")
    p.add_argument("--minutes", type=float, default=0, metavar="M",
                   help="also run a vm_diff campaign of M minutes and report its peak RSS (issue 18: M=10, < 512 MiB)")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(Path(__file__).resolve().parent.parent, parse_args(sys.argv[1:])))
