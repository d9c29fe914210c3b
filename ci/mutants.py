"""mutants — the kill matrix of the bug catalogue (`ci/vmfuzz mutants`; standard library only).

Theory of operation
-------------------
The bug catalogue (vm/machine/bugs.def, docs/bugs.md) holds realistic VM bugs that every
test build can switch on at run time with the environment variable VMFUZZ_BUG=name. This
module runs each engine against each bug, K trials each, and reports per (bug, engine):
caught or not (in how many trials), the median wall-clock seconds to the first finding
over the trials that caught it, the op count of the finding's trace after op-level
minimization, and the finding's signature (docs/bugs.md; the --json document is one of the
contracts of docs/ARCHITECTURE.md, "Contracts scripts rely on").

Engines (each a function returning one Trial):
  libfuzzer        build/fuzz vm_diff_fuzzer seeded with corpus/vm_diff (new units go to a
                   temporary work corpus, never to corpus/), -max_total_time=S, -seed=k+1.
                   Seeds made from traces may catch a bug while the corpus loads: that
                   counts, and is why the next column exists.
  libfuzzer_empty  the same from an empty corpus: what the fuzzer finds on its own.
  rapidcheck       the property binaries build/dev/props/* (SelfTest.* excluded: those
                   inject their own bugs) at their default case counts; trial 0 with the
                   suites' own seeds, trial k>0 with RC_PARAMS=seed=k. Caught = a property
                   fails; the finding is the counterexample trace it writes.
  afl              afl-fuzz on the AFL++ build of vm_diff_replay (build/afl), seeded from
                   corpus/vm_diff, with vm_diff's dictionary (-x) and its op-level mutator
                   (fuzz/vm_diff/afl_mutator.cc, build/aflmutator), stopping at its first
                   crash: a seed that crashes in the dry run (a finding at load time, which
                   AFL itself would skip) or the first crash it saves
                   (AFL_BENCH_UNTIL_CRASH); only when afl-fuzz is installed.
  afl_empty        the same from one seed of a single byte (AFL++ needs one input; the
                   empty program). AFL++ has no VM-state feedback: that is libFuzzer's.

A finding becomes a text trace (vmfuzz-replay --to-text), which is minimized with the
op-level delta debugging of ci/vmfuzzlib.py (`minimize_trace`) against the signature vmfuzz-replay
reports with the same bug switched on (VMFUZZ_BUG is set in this process's environment
while minimizing, and every child inherits it). A finding the replay tool does not
reproduce keeps its unminimized length and the engine's own signature.

Pure parts — catalogue parsing, median, the cell summary, the JSON document, the matrix
and the report — take plain data and are unit-tested in tests/driver/test_mutants.py.
Output: the markdown report goes to work/mutants/report.md; stdout gets the matrix, or with
--json exactly {"mutants": [{"name", "engine", "caught", "seconds", "trace_ops", ...}]}.
Every run also keeps its document, with per-trial seconds ("trial_seconds") and the run's
settings, as work/mutants/runs/STAMP.json (never overwritten): the kill matrix of
`ci/vmfuzz report` and the baseline of a later run.
Progress goes to stderr: one line per trial (bug, engine, trial k/K, time left), updating in
place on a terminal (ci/progress.py).

--baseline OLD.json compares this run with an earlier one, per bug and engine: median time
to kill, Vargha-Delaney A12 and a two-sided Mann-Whitney U p-value, and a verdict
(better / worse / no evidence). The statistics are scipy's (ci/stats.py, run under
Debian's python3, which sees python3-scipy); OLD.json is checked before any trial runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import campaign  # noqa: E402  (ci/campaign.py: reads baselines)
import vmfuzzlib as lib  # noqa: E402  (ci/vmfuzzlib.py: builds, binaries, signatures, minimizer)

sys.path.pop(0)

ENGINES = ("libfuzzer", "libfuzzer_empty", "rapidcheck", "afl", "afl_empty")
ENGINE_TITLES = {
    "libfuzzer": "libFuzzer (seeds)",
    "libfuzzer_empty": "libFuzzer (empty corpus)",
    "rapidcheck": "rapidcheck",
    "afl": "AFL++",
    "afl_empty": "AFL++ (empty corpus)",
}
BUG_LINE = re.compile(r'^\s*VMFUZZ_BUG\(\s*(\w+)\s*,\s*"([^"]+)"\s*,\s*"((?:[^"\\]|\\.)*)"\s*\)', re.M)


# ---------------------------------------------------------------------------------------
# Pure parts.


def parse_catalogue(text: str) -> list[tuple[str, str]]:
    """(name, description) of every VMFUZZ_BUG line of bugs.def, in table order."""
    return [(m.group(2), m.group(3)) for m in BUG_LINE.finditer(text)]


def median(values: list[float]) -> float | None:
    """The median of values (mean of the middle two for an even count); None if empty."""
    xs = sorted(values)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


@dataclass
class Trial:
    caught: bool
    seconds: float | None = None      # wall clock to the first finding
    trace: str | None = None          # the finding as a text trace
    signature: str | None = None      # the engine's own signature, when it gives one


@dataclass
class Cell:
    """One (bug, engine) entry of the matrix."""
    name: str
    engine: str
    trials: list[Trial] = field(default_factory=list)
    trace_ops: int | None = None
    signature: str | None = None
    minimized: str | None = None

    @property
    def caught_trials(self) -> int:
        return sum(1 for t in self.trials if t.caught)

    @property
    def caught(self) -> bool:
        return self.caught_trials > 0

    @property
    def seconds(self) -> float | None:
        """Median seconds to the first finding over the trials that caught the bug."""
        m = median([t.seconds for t in self.trials if t.caught and t.seconds is not None])
        return None if m is None else round(m, 2)


def cell_json(cell: Cell) -> dict:
    """The --json object for one cell (docs/ARCHITECTURE.md), with extra keys (trials, signature)."""
    return {
        "name": cell.name,
        "engine": cell.engine,
        "caught": cell.caught,
        "seconds": cell.seconds,
        "trace_ops": cell.trace_ops,
        "trials": len(cell.trials),
        "trials_caught": cell.caught_trials,
        # Per trial, for `--baseline` statistics: seconds to kill, null where it missed.
        "trial_seconds": [round(t.seconds, 3) if t.caught and t.seconds is not None else None for t in cell.trials],
        "signature": cell.signature,
        # The minimized reproducer (text trace), so a kept run can be replayed without the report.
        "minimized": cell.minimized,
    }


def to_json(cells: list[Cell], **extra) -> str:
    """`{"mutants": [...]}` in catalogue order, then engine order (plus `extra` keys:
    settings, baseline, when given)."""
    return json.dumps({"mutants": [cell_json(c) for c in cells], **extra}, indent=1)


def format_cell(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    k, n = cell.caught_trials, len(cell.trials)
    if not cell.caught:
        return f"no ({k}/{n})"
    return f"yes {k}/{n}, {cell.seconds:.1f} s"


def format_matrix(cells: list[Cell], bugs: list[str], engines: list[str]) -> str:
    """The kill matrix as a markdown table: one row per bug, one column per engine, then
    the shortest minimized trace and its signature."""
    by = {(c.name, c.engine): c for c in cells}
    head = ["bug"] + [ENGINE_TITLES.get(e, e) for e in engines] + ["min trace ops", "signature"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for bug in bugs:
        row_cells = [by.get((bug, e)) for e in engines]
        done = [c for c in row_cells if c is not None and c.trace_ops is not None]
        best = min(done, key=lambda c: c.trace_ops) if done else None
        sig = next((c.signature for c in row_cells if c is not None and c.signature), None)
        ops = str(best.trace_ops) if best else "-"
        sig_text = (sig or "-").replace("|", "\\|")
        rows.append("| " + " | ".join([f"`{bug}`"] + [format_cell(c) for c in row_cells] + [ops, sig_text]) + " |")
    return "\n".join(rows)


def engine_summary(cells: list[Cell], engine: str) -> dict:
    """Totals of one engine: bugs run, caught, caught under 5 s, median of the medians,
    findings minimized to at most 10 ops."""
    mine = [c for c in cells if c.engine == engine]
    caught = [c for c in mine if c.caught]
    secs = [c.seconds for c in caught if c.seconds is not None]
    return {
        "engine": engine,
        "bugs": len(mine),
        "caught": len(caught),
        "under_5s": sum(1 for s in secs if s < 5),
        "median_seconds": median(secs),
        "max_seconds": max(secs) if secs else None,
        "trace_ops_le_10": sum(1 for c in caught if c.trace_ops is not None and c.trace_ops <= 10),
    }


def format_summary(cells: list[Cell], engines: list[str]) -> str:
    lines = []
    for e in engines:
        s = engine_summary(cells, e)
        if not s["bugs"]:
            continue
        med = "-" if s["median_seconds"] is None else f"{s['median_seconds']:.1f} s"
        worst = "-" if s["max_seconds"] is None else f"{s['max_seconds']:.1f} s"
        lines.append(f"- {ENGINE_TITLES.get(e, e)}: caught {s['caught']}/{s['bugs']} "
                     f"({100 * s['caught'] // max(s['bugs'], 1)}%), {s['under_5s']} under 5 s, "
                     f"median {med}, slowest {worst}; {s['trace_ops_le_10']} minimized to <= 10 ops")
    missed = sorted({c.name for c in cells} - {c.name for c in cells if c.caught})
    lines.append(f"- caught by no engine: {', '.join(missed) if missed else 'none'}")
    return "\n".join(lines)


def format_report(cells: list[Cell], bugs: list[str], engines: list[str], settings: str) -> str:
    """The markdown report: settings, summary, matrix, and each bug's shortest trace."""
    out = ["# Kill matrix of the bug catalogue", "", f"Run: `{settings}`", "",
           "Cells: caught in k of n trials, median seconds (wall clock, process start to first "
           "finding) over the trials that caught it. `min trace ops`: the shortest finding after "
           "op-level minimization (ci/vmfuzz minimize_trace with the bug on).", "",
           "## Summary", "", format_summary(cells, engines), "", "## Matrix", "",
           format_matrix(cells, bugs, engines), "", "## Minimized traces", ""]
    by_bug: dict[str, list[Cell]] = {}
    for c in cells:
        by_bug.setdefault(c.name, []).append(c)
    for bug in bugs:
        done = [c for c in by_bug.get(bug, []) if c.minimized]
        if not done:
            continue
        best = min(done, key=lambda c: c.trace_ops if c.trace_ops is not None else 1 << 30)
        out += [f"### `{bug}` ({ENGINE_TITLES.get(best.engine, best.engine)}, {best.trace_ops} ops)", "",
                "```", best.minimized.rstrip("\n"), "```", ""]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------
# Running the engines.


def log(msg: str) -> None:
    print(f"mutants: {msg}", file=sys.stderr, flush=True)


def bug_env(bug: str, **extra: str) -> dict:
    env = dict(os.environ)
    env["VMFUZZ_BUG"] = bug
    env.update(extra)
    return env


def to_text(replay: Path, finding: Path) -> str | None:
    proc = subprocess.run([str(replay), "--to-text", str(finding)], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 and proc.stdout.strip() else None


def run_libfuzzer(ctx, bug: str, seconds: int, trial: int, seeded: bool) -> Trial:
    with tempfile.TemporaryDirectory(prefix=f"vmfuzz-mutant-{bug}-") as tmp:
        work = Path(tmp) / "corpus"
        work.mkdir()
        cmd = [str(ctx.fuzzer), str(work)]
        if seeded:
            cmd.append(str(ctx.root / "corpus" / "vm_diff"))
        cmd += [f"-max_total_time={seconds}", f"-seed={trial + 1}", f"-artifact_prefix={tmp}/",
                "-print_final_stats=0"] + ctx.libfuzzer_opts
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=tmp, env=bug_env(bug), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace", timeout=seconds + 120)
        elapsed = time.monotonic() - start
        artifacts = sorted(p for p in Path(tmp).iterdir() if p.is_file() and p.name.startswith(("crash-", "timeout-", "oom-", "leak-")))
        if not artifacts:
            return Trial(False)
        return Trial(True, elapsed, to_text(ctx.replay, artifacts[0]), lib.crash_signature(proc.stdout))


def run_rapidcheck(ctx, bug: str, trial: int) -> Trial:
    total = 0.0
    with tempfile.TemporaryDirectory(prefix=f"vmfuzz-mutant-rc-{bug}-") as tmp:
        extra = {"VMFUZZ_PROPS_OUT": tmp}
        if trial > 0:
            extra["RC_PARAMS"] = f"seed={trial}"
        for binary in ctx.props:
            start = time.monotonic()
            proc = subprocess.run([str(binary), "--gtest_filter=-SelfTest.*", "--gtest_break_on_failure"],
                                  cwd=tmp, env=bug_env(bug, **extra), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors="replace", timeout=1800)
            total += time.monotonic() - start
            if proc.returncode != 0:
                traces = sorted(Path(tmp).glob("rc-counterexample-*.trace"))
                text = traces[0].read_text() if traces else None
                failed = re.findall(r"^\[  FAILED  \] (\S+)", proc.stdout, re.M)
                sig = lib.crash_signature(proc.stdout) or (f"property {failed[0]}" if failed else
                                                                  f"{binary.name}: exit {proc.returncode}")
                return Trial(True, total, text, sig)
    return Trial(False)


SEED_CRASH = re.compile(r"Test case '([^']*)' results in a crash")


def run_afl(ctx, bug: str, seconds: int, trial: int, seeded: bool = True) -> Trial:
    """afl-fuzz from corpus/vm_diff (seeded) or from one single-byte seed until its first
    crash. A seed that crashes in AFL's dry run is a finding at load time (AFL would skip it
    and fuzz on): the run stops there and that seed is the finding. Otherwise
    AFL_BENCH_UNTIL_CRASH ends the run at the first crash it saves, or -V ends it."""
    with tempfile.TemporaryDirectory(prefix=f"vmfuzz-mutant-afl-{bug}-") as tmp:
        if seeded:
            seeds = ctx.root / "corpus" / "vm_diff"
        else:
            seeds = Path(tmp) / "seed"
            seeds.mkdir()
            (seeds / "empty").write_bytes(b"\x00")  # decodes to a config and no op: the empty program
        out = Path(tmp) / "out"
        env = bug_env(bug, AFL_SKIP_CPUFREQ="1", AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES="1", AFL_NO_UI="1",
                      AFL_BENCH_UNTIL_CRASH="1", AFL_NO_AFFINITY="1",
                      AFL_CUSTOM_MUTATOR_LIBRARY=str(ctx.afl_mutator))
        dictionary = ctx.root / "fuzz" / "vm_diff" / "vm_diff.dict"
        cmd = (["afl-fuzz", "-i", str(seeds), "-o", str(out), "-V", str(seconds), "-s", str(trial + 1)] +
               (["-x", str(dictionary)] if dictionary.is_file() else []) + ["--", str(ctx.afl_target), "@@"])
        start = time.monotonic()
        seed_hit = None
        with subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace") as proc:
            try:
                for line in proc.stdout:
                    m = SEED_CRASH.search(line)
                    if m:
                        seed_hit = m.group(1)
                        break
                    if time.monotonic() - start > seconds + 120:
                        break
            finally:
                elapsed = time.monotonic() - start
                if proc.poll() is None:
                    proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if seed_hit is not None:
            orig = re.search(r"orig:(.*)$", seed_hit)
            seed = seeds / orig.group(1) if orig else None
            text = to_text(ctx.replay, seed) if seed is not None and seed.is_file() else None
            return Trial(True, elapsed, text, "seed crashed in the dry run")
        crashes = sorted(p for p in out.glob("*/crashes/id:*") if p.is_file())
        if crashes:
            return Trial(True, elapsed, to_text(ctx.replay, crashes[0]), None)
        return Trial(False)


def count_ops(text: str) -> int:
    """Op lines of a trace (a closing `check` is an op of the language and counts)."""
    return len(lib.trace_ops(text)[1])


def minimize(ctx, bug: str, cell: Cell) -> None:
    """Minimize the shortest caught trial's trace with the bug on; fill trace_ops/signature."""
    texts = [t for t in cell.trials if t.caught and t.trace]
    if not texts:
        cell.signature = next((t.signature for t in cell.trials if t.caught and t.signature), None)
        return
    trial = min(texts, key=lambda t: count_ops(t.trace))
    key = (bug, trial.trace)
    if key in ctx.minimized:
        cell.minimized, cell.signature = ctx.minimized[key]
        cell.trace_ops = count_ops(cell.minimized)
        return
    old = os.environ.get("VMFUZZ_BUG")
    os.environ["VMFUZZ_BUG"] = bug
    try:
        with tempfile.TemporaryDirectory(prefix="vmfuzz-mutant-min-") as tmp:
            probe = Path(tmp) / "finding.trace"
            probe.write_text(trial.trace)
            sig = lib.replay_signature(probe)
            if sig is None:
                cell.signature = (trial.signature or "?") + " (not reproduced by vmfuzz-replay)"
                cell.minimized = trial.trace
            else:
                cell.signature = sig
                cell.minimized = lib.minimize_trace(trial.trace, sig, log=lambda _m: None)
    finally:
        if old is None:
            del os.environ["VMFUZZ_BUG"]
        else:
            os.environ["VMFUZZ_BUG"] = old
    cell.trace_ops = count_ops(cell.minimized)
    ctx.minimized[key] = (cell.minimized, cell.signature)


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything written to file descriptor 1 (builds, the driver's messages, child
    processes) to stderr, so that --json leaves stdout holding the JSON document alone."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@dataclass
class Context:
    root: Path
    replay: Path
    fuzzer: Path | None = None
    libfuzzer_opts: list[str] = field(default_factory=list)
    props: list[Path] = field(default_factory=list)
    afl_target: Path | None = None
    afl_mutator: Path | None = None
    minimized: dict = field(default_factory=dict)


def build_afl() -> Path:
    return lib.ensure_built("afl", targets=["vm_diff_replay"]) / "fuzz" / "vm_diff" / "vm_diff_replay"


def check_baseline(path: Path) -> tuple[str, dict]:
    """The interpreter for ci/stats.py and the baseline document, both checked before the
    matrix runs (a bad file or a missing scipy is known now, not after an hour)."""
    python = lib.debian_python("scipy")
    doc = campaign.load_mutants_json(path)
    for c in doc["mutants"]:
        campaign.trial_times(c, str(path))
    return python, doc


def compare_with_baseline(root: Path, python: str, baseline: Path, current: Path) -> list[dict]:
    proc = subprocess.run([python, str(root / "ci" / "stats.py"), str(baseline), str(current)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip() or f"ci/stats.py exited {proc.returncode}")
    return json.loads(proc.stdout)


def format_baseline(rows: list[dict], baseline: str) -> str:
    """The comparison as markdown lines (ci/stats.py's one line per bug and engine)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        import stats  # ci/stats.py: imports scipy only to compute, not to format
    finally:
        sys.path.pop(0)
    head = (f"Against baseline `{baseline}` (A12 = P(this run kills sooner) + 0.5 P(tie); "
            "two-sided Mann-Whitney U; better/worse at p < 0.05):")
    return "\n".join([head, ""] + ["- " + stats.format_row(r) for r in rows] +
                     ([] if rows else ["- no bug and engine in common with the baseline"]))


def main(root: Path, args) -> int:
    """Run the selected engines against the selected bugs; print and write the matrix.
    Returns 0 when every bug was caught by some engine, 1 when one was missed by all, 2 on
    unusable arguments, an unusable baseline or a missing tool."""
    catalogue = [name for name, _ in parse_catalogue((root / "vm" / "machine" / "bugs.def").read_text())]
    bugs = args.bug or catalogue
    unknown = [b for b in bugs if b not in catalogue]
    if unknown:
        print(f"mutants: unknown bug(s) {', '.join(unknown)}; see vm/machine/bugs.def", file=sys.stderr)
        return 2
    have_afl = shutil.which("afl-fuzz") is not None and shutil.which("afl-clang-fast++") is not None
    if args.engine == "all":
        engines = ["libfuzzer", "libfuzzer_empty", "rapidcheck"] + (["afl", "afl_empty"] if have_afl else [])
    elif args.engine == "libfuzzer":
        engines = ["libfuzzer", "libfuzzer_empty"]
    elif args.engine in ("afl", "afl_empty") and not have_afl:
        print("mutants: afl++ is missing; install it with:\n  sudo apt-get install -y afl++", file=sys.stderr)
        return 2
    else:
        engines = [args.engine]
    baseline = Path(args.baseline) if getattr(args, "baseline", None) else None
    stats_python = None
    if baseline is not None:
        try:
            stats_python, _ = check_baseline(baseline)
        except (campaign.BadInput, lib.MissingTool) as e:  # one line says why
            print(f"mutants: error: {e}", file=sys.stderr)
            return 2
    with stdout_to_stderr():
        cells = run_matrix(root, args, bugs, engines)
    settings = (f"ci/vmfuzz mutants --engine {args.engine} --time {args.time} --trials {args.trials}"
                + (f" --bug {' '.join(args.bug)}" if args.bug else ""))
    extra_env = {k: os.environ[k] for k in ("VMFUZZ_NO_STATE_FEEDBACK",) if os.environ.get(k)}
    if extra_env:
        settings += " (" + " ".join(f"{k}={v}" for k, v in extra_env.items()) + ")"
    runs = root / "work" / "mutants" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    saved = lib.unused_path(runs / (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ".json"))
    meta = {"settings": settings, "commit": lib.git_commit(), "time_limit": args.time}
    saved.write_text(to_json(cells, **meta) + "\n")
    report = format_report(cells, bugs, engines, settings)
    rows = None
    if baseline is not None:
        try:
            rows = compare_with_baseline(root, stats_python, baseline, saved)
        except RuntimeError as e:
            print(f"mutants: error: comparing with {baseline}: {e}", file=sys.stderr)
            return 2
        meta["baseline"] = {"file": str(baseline), "comparison": rows}
        saved.write_text(to_json(cells, **meta) + "\n")
        report += "\n## Against the baseline\n\n" + format_baseline(rows, str(baseline)) + "\n"
    report_path = Path(args.report) if getattr(args, "report", None) else root / "work" / "mutants" / "report.md"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(report)
    if args.json:
        print(to_json(cells, **({"baseline": meta["baseline"]} if rows is not None else {})))
    else:
        print(format_summary(cells, engines))
        print()
        print(format_matrix(cells, bugs, engines))
        if rows is not None:
            print()
            print(format_baseline(rows, str(baseline)))
        print(f"\nreport: {report_path}\nrun kept as: {saved} (a baseline for the next run: --baseline {saved})")
    return 0 if all(any(c.caught for c in cells if c.name == b) for b in bugs) else 1


def run_matrix(root: Path, args, bugs: list[str], engines: list[str]) -> list[Cell]:
    """Build what the engines need (unless --no-build), then run every trial and minimize."""
    ctx = Context(root=root, replay=lib.replay_binary())
    if not args.no_build:
        lib.ensure_built("dev", targets=["vmfuzz-replay"] + (["concurrent", "state_machine", "targeted"] if "rapidcheck" in engines else []))
        if any(e.startswith("libfuzzer") for e in engines):
            lib.ensure_built("fuzz", targets=["vm_diff_fuzzer"])
    if any(e.startswith("libfuzzer") for e in engines):
        ctx.fuzzer = lib.fuzzer_binary("vm_diff")
        ctx.libfuzzer_opts = lib.libfuzzer_options("vm_diff")
    if "rapidcheck" in engines:
        props_dir = lib.build_dir("dev") / "props"
        ctx.props = sorted(p for p in props_dir.iterdir()
                           if p.is_file() and os.access(p, os.X_OK) and p.name != "language")
    if any(e.startswith("afl") for e in engines):
        ctx.afl_target = build_afl() if not args.no_build else root / "build" / "afl" / "fuzz" / "vm_diff" / "vm_diff_replay"
        ctx.afl_mutator = lib.afl_mutator(build=not args.no_build)
    cells: list[Cell] = []
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        import progress as progress_mod
    finally:
        sys.path.pop(0)
    # Weights: a fuzzing trial costs up to --time seconds; a rapidcheck trial about as much
    # as a short one (its suites' default case counts), counted as 10 s.
    weight = {e: (10.0 if e == "rapidcheck" else float(args.time)) for e in engines}
    progress = progress_mod.Progress(len(bugs) * len(engines) * args.trials, "mutants",
                                     total_weight=len(bugs) * sum(weight.values()) * args.trials)
    for bug in bugs:
        for engine in engines:
            cell = Cell(bug, engine)
            for k in range(args.trials):
                progress.step(f"{bug} / {engine} trial {k + 1}/{args.trials}", weight[engine])
                if engine == "libfuzzer":
                    t = run_libfuzzer(ctx, bug, args.time, k, seeded=True)
                elif engine == "libfuzzer_empty":
                    t = run_libfuzzer(ctx, bug, args.time, k, seeded=False)
                elif engine == "rapidcheck":
                    t = run_rapidcheck(ctx, bug, k)
                else:
                    t = run_afl(ctx, bug, args.time, k, seeded=(engine == "afl"))
                cell.trials.append(t)
            minimize(ctx, bug, cell)
            cells.append(cell)
            progress.note(f"mutants: {bug} / {engine}: {format_cell(cell)}; trace {cell.trace_ops} ops; "
                          f"{cell.signature}")
    progress.finish(f"{len(cells)} cells, {len(cells) * args.trials} trials")
    return cells
