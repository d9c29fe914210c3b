"""What the driver (ci/vmfuzz) and its verb modules (ci/mutants.py, ci/bench.py) share:
the source tree and its build trees, the Debian packages and their setup, running a
command, building a preset (the one build helper), the binaries, crash signatures,
trace minimization and the facts a build states of itself. Standard library only.

ci/vmfuzz imports this module; the verb modules import it too, never ci/vmfuzz, so the
dependency runs one way: driver -> verb modules -> this library.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "work"
PRESETS = ("dev", "fuzz", "coverage", "release")

# ---------------------------------------------------------------------------------------
# Tools: every Debian package the project needs, with a probe that tells whether it is
# usable. One table: setup, error messages and the README are derived from it.
# (package, kind, probe) — kind "bin": an executable on PATH; "file": a path that exists;
# "py": a module Debian's own interpreter (DEBIAN_PYTHON) imports (the report and the
# statistics run there: the driver itself stays standard library only).
REQUIREMENTS = [
    ("cmake", "bin", "cmake"),
    ("ninja-build", "bin", "ninja"),
    ("g++", "bin", "g++"),
    ("clang", "bin", "clang++"),
    ("libclang-rt-14-dev", "file", "/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a"),
    ("llvm-14", "bin", "llvm-cov-14"),
    ("libgtest-dev", "file", "/usr/include/gtest/gtest.h"),
    ("librapidcheck-dev", "file", "/usr/include/rapidcheck.h"),
    ("libbenchmark-dev", "file", "/usr/include/benchmark/benchmark.h"),
    ("afl++", "bin", "afl-clang-fast++"),
    ("graphviz", "bin", "dot"),
]
# Needed by the report, the statistics of `mutants --baseline` and the tests of both
# (`setup`, `test` and `report` ask for them; the other verbs work without them).
REPORT_REQUIREMENTS = [
    ("python3-matplotlib", "py", "matplotlib"),
    ("python3-scipy", "py", "scipy"),
    ("python3-yaml", "py", "yaml"),
]
# Wanted by the same verbs but not required: where it cannot be installed (no package for
# this architecture, no root), setup says so and goes on; the report's browser test then
# checks the HTML structurally and says loudly that it did.
OPTIONAL = [
    ("chromium", "bin", "chromium"),
]
# The interpreter that sees Debian's python3-* packages. `python3` on PATH may be another
# one (a pyenv, a venv) that does not.
DEBIAN_PYTHON = "/usr/bin/python3"


def say(msg: str) -> None:
    print(f"[vmfuzz] {msg}", flush=True)


def fail(msg: str, code: int = 2) -> int:
    print(f"vmfuzz: error: {msg}", file=sys.stderr, flush=True)
    return code


def probe_ok(kind: str, what: str) -> bool:
    if kind == "bin":
        return shutil.which(what) is not None
    if kind == "py":
        return python_has(DEBIAN_PYTHON, what)
    if kind == "file":
        # The clang runtime path carries the full version; accept any 14.x directory.
        if "/clang/14.0.6/" in what:
            base = Path("/usr/lib/llvm-14/lib/clang")
            tail = what.split("/clang/14.0.6/", 1)[1]
            return any((d / tail).exists() for d in base.glob("14*")) if base.exists() else False
        return Path(what).exists()
    raise ValueError(kind)


_PY_PROBES: dict[tuple[str, str], bool] = {}


def python_has(python: str, module: str) -> bool:
    """Whether `python` exists and finds `module` (importlib's find_spec: no import, fast).
    Every "py" module of the tables is probed in one run of `python`, then cached."""
    if (python, module) not in _PY_PROBES:
        mods = sorted({w for _, k, w in REQUIREMENTS + REPORT_REQUIREMENTS + OPTIONAL if k == "py"} | {module})
        found = set()
        if Path(python).exists():
            code = ("import importlib.util, sys\n"
                    "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))")
            proc = subprocess.run([python, "-c", code, *mods], capture_output=True, text=True)
            found = set(proc.stdout.split()) if proc.returncode == 0 else set()
        for m in mods:
            _PY_PROBES[(python, m)] = m in found
    return _PY_PROBES[(python, module)]


def missing_packages(table=None) -> list[str]:
    return [pkg for pkg, kind, what in (REQUIREMENTS if table is None else table) if not probe_ok(kind, what)]


def debian_python(*modules: str) -> str:
    """DEBIAN_PYTHON when it imports every module; else CommandFailed-style error text."""
    missing = [m for m in modules if not python_has(DEBIAN_PYTHON, m)]
    if missing:
        pkgs = " ".join("python3-" + m for m in missing)
        raise MissingTool(f"{DEBIAN_PYTHON} cannot import {', '.join(missing)}; install with: "
                          f"sudo apt-get install -y --no-install-recommends {pkgs} (or run ci/vmfuzz setup as root). "
                          f"Note: {sys.executable} (the python3 running the driver) need not see Debian's packages")
    return DEBIAN_PYTHON


class MissingTool(Exception):
    """A tool or package is missing; the message says how to install it."""


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None, check: bool = True,
        show: str = "stdout") -> int:
    """Run cmd; returns its exit code (raises CommandFailed on failure if check). Its output:
    show="stdout" shows it as it comes; "stderr" shows it on stderr (a verb's stdout stays
    clean for --json); "failure" keeps it and writes its tail to stderr only if cmd fails."""
    if show != "failure":
        print("+ " + " ".join(str(c) for c in cmd), file=sys.stderr if show == "stderr" else sys.stdout, flush=True)
    if show == "failure":
        proc = subprocess.run([str(c) for c in cmd], cwd=str(cwd or ROOT), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace")
        rc = proc.returncode
        if rc != 0:
            sys.stderr.write("+ " + " ".join(str(c) for c in cmd) + "\n" + proc.stdout[-4000:])
    else:
        out = sys.stderr if show == "stderr" else None
        rc = subprocess.call([str(c) for c in cmd], cwd=str(cwd or ROOT), env=env, stdout=out, stderr=out)
    if check and rc != 0:
        raise CommandFailed(cmd, rc)
    return rc


class CommandFailed(Exception):
    def __init__(self, cmd, rc):
        super().__init__(f"command failed with exit code {rc}: {' '.join(str(c) for c in cmd)}")
        self.rc = rc


def ensure_setup(report: bool = False) -> int:
    """Install what is missing when we can; otherwise print the exact command. 0 = ready.
    report: also what the report, the statistics and their tests need (and Chromium)."""
    rc = install(missing_packages(REQUIREMENTS + (REPORT_REQUIREMENTS if report else [])))
    if rc == 0 and report:
        optional = missing_packages(OPTIONAL)
        if optional and install(optional, optional=True) != 0:
            say("warning: optional packages not installed: " + " ".join(optional) +
                " (the report's browser test falls back to structural HTML checks, and says so)")
    return rc


def install(missing: list[str], optional: bool = False) -> int:
    """apt-get install `missing` as root; otherwise print the line to run. 0 = installed."""
    if not missing:
        return 0
    line = "apt-get install -y --no-install-recommends " + " ".join(missing)
    can_install = hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")
    if not can_install:
        if optional:
            say(f"warning: optional packages missing; install them with: sudo {line}")
            return 1
        return fail(f"missing packages; install them with:\n  sudo {line}")
    say("installing missing packages: " + " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if run(["apt-get", "update", "-q"], env=env, check=False) != 0:
        return fail("apt-get update failed; run it by hand, then: " + line)
    if run(line.split(), env=env, check=False) != 0:
        return fail("apt-get install failed; run by hand: " + line)
    _PY_PROBES.clear()
    still = [p for p in missing if p in missing_packages(REQUIREMENTS + REPORT_REQUIREMENTS + OPTIONAL)]
    if still:
        return fail("still missing after install: " + " ".join(still))
    return 0


def build_dir(preset: str) -> Path:
    return ROOT / "build" / preset


def ensure_built(preset: str, targets: list[str] | None = None, jobs: int | None = None,
                 show: str = "stdout") -> Path:
    """Configure `preset` (CMakePresets.json) if its tree is new, then build `targets` (all
    when None); `show` as for run(). The one build helper of ci/: the driver's verbs,
    `mutants` and `bench` all call it. Returns the build tree; raises CommandFailed, or
    MissingTool when cmake is absent."""
    if shutil.which("cmake") is None:
        raise MissingTool("cmake not found; install it with: sudo apt-get install -y cmake ninja-build "
                          "(or run ci/vmfuzz setup as root)")
    bdir = build_dir(preset)
    if not (bdir / "CMakeCache.txt").exists():
        run(["cmake", "--preset", preset], show=show)
    cmd = ["cmake", "--build", "--preset", preset]
    if jobs:
        cmd += ["-j", str(jobs)]
    if targets:
        cmd += ["--target", *targets]
    run(cmd, show=show)
    return bdir


def afl_mutator(build: bool = True) -> Path:
    """vm_diff's op-level mutator as an AFL++ custom mutator library (fuzz/vm_diff/
    afl_mutator.cc), built in its own uninstrumented PIC tree (preset aflmutator): afl-fuzz
    loads it through AFL_CUSTOM_MUTATOR_LIBRARY."""
    bdir = ensure_built("aflmutator", targets=["vm_diff_afl_mutator"]) if build else build_dir("aflmutator")
    return bdir / "fuzz" / "vm_diff" / "libvm_diff_afl_mutator.so"


def ci_module(name: str):
    """A standard-library module of ci/ (campaign, progress, mutants, bench), imported once."""
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(ROOT / "ci"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def fuzz_targets() -> list[str]:
    """Targets are the folders of fuzz/ with a CMakeLists.txt, vm_diff first (the default)."""
    names = sorted(p.name for p in (ROOT / "fuzz").iterdir() if (p / "CMakeLists.txt").exists())
    return sorted(names, key=lambda n: (n != "vm_diff", n))


def fuzzer_binary(target: str) -> Path:
    return build_dir("fuzz") / "fuzz" / target / f"{target}_fuzzer"


def replay_binary() -> Path:
    return build_dir("dev") / "harness" / "vmfuzz-replay"


def threeway_binary() -> Path:
    return build_dir("dev") / "threeway" / "vmfuzz-threeway"


def libfuzzer_options(target: str) -> list[str]:
    """Flags from fuzz/TARGET/TARGET.options ([libfuzzer] section) and its dictionary."""
    opts = []
    optfile = ROOT / "fuzz" / target / f"{target}.options"
    if optfile.exists():
        section = None
        for raw in optfile.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line.strip("[]").strip()
                continue
            if section == "libfuzzer" and "=" in line:
                key, value = (s.strip() for s in line.split("=", 1))
                if key == "dict":
                    value = str(ROOT / "fuzz" / target / value)
                opts.append(f"-{key}={value}")
    dict_file = ROOT / "fuzz" / target / f"{target}.dict"
    if dict_file.exists() and not any(o.startswith("-dict=") for o in opts):
        opts.append(f"-dict={dict_file}")
    return opts


SIG_PATTERNS = [
    # Our own oracles print one line each (fuzz targets, contract assertions).
    re.compile(r"^ERROR: (vmfuzz [^\n]*)$", re.M),
    # Sanitizers: the SUMMARY line minus addresses and file positions.
    re.compile(r"^SUMMARY: ((?:Address|UndefinedBehavior|Leak|Memory)Sanitizer: [^\n]*)$", re.M),
    re.compile(r"^==\d+==\s*ERROR: (libFuzzer: [^\n]*)$", re.M),
]


def normalize_signature(sig: str) -> str:
    """Drop what varies between equivalent crashes: addresses, sizes, file:line positions."""
    sig = re.sub(r"0x[0-9a-f]+", "ADDR", sig)
    sig = re.sub(r"\S+\.(?:cc|h|cpp):\d+(?::\d+)?", "", sig)
    sig = re.sub(r"\(\S+\+ADDR\)", "", sig)
    return re.sub(r"\s+", " ", sig).strip()


def crash_signature(output: str) -> str | None:
    for pat in SIG_PATTERNS:
        m = pat.search(output)
        if m:
            return normalize_signature(m.group(1))
    return None


def unused_path(path: Path) -> Path:
    """path, or path with .1, .2, ... before the suffix: never overwrite a file."""
    if not path.exists():
        return path
    for i in range(1, 10000):
        cand = path.with_name(f"{path.stem}.{i}{path.suffix}")
        if not cand.exists():
            return cand
    raise RuntimeError(f"no free name next to {path}")


def replay_json(path: Path) -> dict | None:
    """vmfuzz-replay --json on one file: its object, or None for unusable input."""
    # The same full-check cadence as the vm_diff target (kFullCheckEvery), so a finding the
    # fuzzer made between two `check`s is seen by the minimizer too.
    proc = subprocess.run([str(replay_binary()), "--json", "--quiet", "--full-check-every", str(full_check_every()),
                           str(path)], capture_output=True, text=True)
    if proc.returncode == 2:
        return None
    import json
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return None


def replay_signature(path: Path) -> str | None:
    obj = replay_json(path)
    if not obj or obj.get("ok") or not obj.get("failure"):
        return None
    fail_obj = obj["failure"]
    return fail_obj.get("signature") or f"{fail_obj.get('oracle')} in {fail_obj.get('op', '').split(' ')[0]}"


def trace_ops(text: str) -> tuple[list[str], list[str]]:
    """Split a trace into (header lines: comments and config, op lines)."""
    header, ops = [], []
    for line in text.splitlines():
        s = line.split("#", 1)[0].strip() if not line.strip().startswith("#") else ""
        if not s:
            if not ops:
                header.append(line)
            continue
        if s.startswith("config") and not ops:
            header.append(line)
        else:
            ops.append(line.strip())
    return header, ops


def ddmin(items: list, keeps) -> list:
    """Zeller's delta debugging: a 1-minimal sublist for which keeps(sublist) holds."""
    n = 2
    while len(items) >= 2:
        chunk = max(1, len(items) // n)
        reduced = False
        for start in range(0, len(items), chunk):
            complement = items[:start] + items[start + chunk:]
            if complement and keeps(complement):
                items, n, reduced = complement, max(n - 1, 2), True
                break
        if not reduced:
            if n >= len(items):
                break
            n = min(len(items), n * 2)
    return items


NUM = re.compile(r"(?<![\w:*])(0x[0-9a-fA-F]+|\d+)(?![\w])")
NAME = re.compile(r"\b([tcm])(\d+)\b")


def shrink_line_args(line: str, keeps_line) -> str:
    """Try smaller values for every number of an op line; keep those that keep the bug."""
    for _ in range(2):
        changed = False
        for m in list(NUM.finditer(line)):
            value = int(m.group(1), 0)
            for cand in sorted({0, 1, 0x1000, 0x10000, value // 2 & ~0xfff, value - 0x1000, value // 2}):
                if cand < 0 or cand >= value:
                    continue
                text = hex(cand) if m.group(1).startswith("0x") else str(cand)
                new = line[:m.start(1)] + text + line[m.end(1):]
                if keeps_line(new):
                    line, changed = new, True
                    break
            if changed:
                break
        if not changed:
            break
    return line


def renumber_names(ops: list[str]) -> list[str]:
    """Rename t/c/m names to the lowest numbers in order of first use (t0 stays t0)."""
    maps = {"t": {"0": "0"}, "c": {}, "m": {}}
    out = []
    for line in ops:
        def sub(m):
            kind, num = m.group(1), m.group(2)
            table = maps[kind]
            if num not in table:
                used = set(table.values())
                table[num] = str(next(i for i in range(16) if str(i) not in used))
            return kind + table[num]
        code, _, comment = line.partition("#")
        out.append(NAME.sub(sub, code) + (("#" + comment) if comment else ""))
    return out


# A schedule action of docs/concurrency.md §Explorers: what an explorer places (a `reply`
# that answers unavailable or error is what the manager says, an op of the program).
SCHEDULE_ACTION = re.compile(r"^\s*(run\s|quiesce\b|ready\s|reply\s+\S+\s+\S+\s+supply\b)")


def schedule_to_drain(ops: list[str], keeps) -> list[str]:
    """Shrink the schedule's preemptions: move each burst of schedule actions that sits
    between two ops of the program (the last burst first) to after the program's last op,
    where the final drain's actions are and cost none, when the finding stays."""
    def bursts(lines):
        out, i = [], 0
        while i < len(lines):
            if SCHEDULE_ACTION.match(lines[i]):
                j = i
                while j < len(lines) and SCHEDULE_ACTION.match(lines[j]):
                    j += 1
                if j < len(lines):  # followed by an op of the program: a preemption
                    out.append((i, j))
                i = j
            else:
                i += 1
        return out
    done: set[tuple[str, ...]] = set()
    while True:
        moved = False
        for i, j in reversed(bursts(ops)):
            burst = ops[i:j]
            rest = ops[:i] + ops[j:]
            last = max(k for k, line in enumerate(rest) if not SCHEDULE_ACTION.match(line))
            candidate = rest[:last + 1] + burst + rest[last + 1:]
            if tuple(candidate) in done:
                continue
            done.add(tuple(candidate))
            if keeps(candidate):
                ops = candidate
                moved = True
                break
        if not moved:
            return ops


def minimize_trace(text: str, signature: str, log=say) -> str:
    """Op-level delta debugging of a text trace that keeps `signature`."""
    header, ops = trace_ops(text)
    with tempfile.TemporaryDirectory(prefix="vmfuzz-min-") as tmp:
        probe = Path(tmp) / "probe.trace"
        tries = [0]

        def keeps(candidate_ops: list[str]) -> bool:
            tries[0] += 1
            probe.write_text("\n".join(header + candidate_ops) + "\n")
            return replay_signature(probe) == signature

        # Assertions are not part of the bug: strip them first where that keeps it.
        stripped = [re.split(r"\s(?:==|=>)\s", o)[0] for o in ops]
        if keeps(stripped):
            ops = stripped
        ops = ddmin(ops, keeps)
        log(f"op-level: {len(ops)} ops left after {tries[0]} runs")
        ops = schedule_to_drain(ops, keeps)
        for i in range(len(ops)):
            ops[i] = shrink_line_args(ops[i], lambda new: keeps(ops[:i] + [new] + ops[i + 1:]))
        renamed = renumber_names(ops)
        if keeps(renamed):
            ops = renamed
        log(f"arguments shrunk after {tries[0]} runs")
    return "\n".join(header + ops) + "\n"


def git_commit() -> str:
    """The commit the tree is at (with '-dirty' for local changes), or 'unknown'."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=str(ROOT), capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=str(ROOT),
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    return (head + ("-dirty" if dirty else "")) if head else "unknown"


_BUILD_FACTS: dict | None = None


def build_facts() -> dict:
    """What this build says of itself (`vmfuzz-replay --build-info`): format_version (the
    newest binary format it reads and writes), full_check_every (vm_diff's full-check
    cadence), ops. Read from the build, never copied, so the driver cannot drift from it."""
    global _BUILD_FACTS
    if _BUILD_FACTS is None:
        import json
        if not replay_binary().exists():
            ensure_built("dev", ["vmfuzz-replay"])
        proc = subprocess.run([str(replay_binary()), "--build-info"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"[vmfuzz] {replay_binary()} --build-info failed: {proc.stderr.strip()}")
        _BUILD_FACTS = json.loads(proc.stdout)
    return _BUILD_FACTS


def full_check_every() -> int:
    return int(build_facts()["full_check_every"])


def format_version() -> int:
    return int(build_facts()["format_version"])


def known_formats() -> tuple[int, ...]:
    """Version bytes with a format of their own; every other byte reads as format 1."""
    return tuple(range(1, format_version() + 1))
