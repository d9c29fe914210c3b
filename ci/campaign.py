"""campaign — what a report reads from work/: campaign timelines, logs, object graphs,
findings and kill matrices (standard library only; no plotting here).

Theory of operation
-------------------
`ci/vmfuzz fuzz` writes, besides libFuzzer's own log (work/fuzz/TARGET/fuzz.log, the
latest campaign), one timeline per campaign: work/fuzz/TARGET/campaigns/STAMP.tsv. Its
`#` header names the target, engine, jobs, time budget, start time and bug switch; each
row is one libFuzzer status line with the wall-clock seconds since the campaign started
(libFuzzer's own lines carry no time). The driver flushes every row, so a campaign cut
off by Ctrl-C or a kill leaves a timeline that is complete up to its last row; only a
finished campaign has the closing `# ended` line. `read_timeline` reads any prefix of
such a file, including a last row cut in half (dropped), and never raises on content: a
line it cannot read is skipped and counted in `Campaign.skipped`.

A fuzz.log with no timeline (older campaigns, logs copied from elsewhere) is read too:
the seconds are then estimated as execs / exec/s, which is how libFuzzer computes its
rate (marked `estimated`). An AFL++ campaign (`fuzz --engine afl`, work/afl/TARGET/) is
read from AFL's own plot_data, which has times (no features or VM states: AFL has none).

Both libFuzzer formats are understood: the normal status line
    #4096  pulse  cov: 812 ft: 2310 corp: 41/9831b lim: 4096 exec/s: 2048 rss: 61Mb
and the fork-mode (`--jobs N`) line
    #252: cov: 12842 ft: 12842 corp: 73 exec/s 126 oom/timeout/crash: 0/0/0 time: 2s job: 1

Object graphs are the DOT text `vmfuzz-replay --dot` writes (harness/exec/dot.h): `parse_dot`
returns its objects (id, ref count, resident pages, flags) and its shadow and copy edges,
from which `vm_shape` derives the numbers of the VM-state histogram: chain depth of every
object, sharers (ref count) of every object, copy objects, and pagers (internal objects
with a default pager, external memory objects).

Statistics that need no library live here too (Vargha-Delaney A12 is one line); the U test
is scipy's, in ci/stats.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

TIMELINE_COLUMNS = ("seconds", "execs", "exec_s", "cov", "ft", "corpus", "vm_states", "crashes")
TIMELINE_MAGIC = "# vmfuzz campaign timeline v1"

STATUS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/\S+.*?exec/s: (\d+)")
FORK_STATUS = re.compile(r"^#(\d+): cov: (\d+) ft: (\d+) corp: (\d+) exec/s:? (\d+).*?time: (\d+)s")
VMSTATE = re.compile(r"^VMSTATE: (\d+) features")


def parse_status(line: str) -> dict | None:
    """One libFuzzer status line as {execs, cov, ft, corpus, exec_s[, seconds]}; else None."""
    m = STATUS.match(line)
    if m:
        return {"execs": int(m.group(1)), "cov": int(m.group(3)), "ft": int(m.group(4)),
                "corpus": int(m.group(5)), "exec_s": int(m.group(6))}
    m = FORK_STATUS.match(line)
    if m:
        return {"execs": int(m.group(1)), "cov": int(m.group(2)), "ft": int(m.group(3)),
                "corpus": int(m.group(4)), "exec_s": int(m.group(5)), "seconds": float(m.group(6))}
    return None


@dataclass
class Campaign:
    """One campaign: its header fields and rows (dicts keyed by TIMELINE_COLUMNS)."""
    source: str
    header: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    finished: bool = False
    estimated: bool = False      # seconds estimated from execs / exec/s (a bare fuzz.log)
    skipped: int = 0             # lines that could not be read
    end: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        h = self.header
        bits = [h.get("target", "?"), h.get("started", "")]
        if h.get("bug"):
            bits.append("VMFUZZ_BUG=" + h["bug"])
        if h.get("jobs") not in (None, "1"):
            bits.append(f"{h['jobs']} jobs")
        return " ".join(b for b in bits if b)

    @property
    def state(self) -> str:
        """'finished (status)', or 'cut off after Ns' for a timeline with no end line."""
        if self.finished and self.end.get("status") == "interrupted":
            return f"stopped by Ctrl-C after {float(self.end.get('seconds', 0) or 0):.0f}s"
        if self.finished:
            return "finished (" + self.end.get("status", "?") + ")"
        last = self.rows[-1]["seconds"] if self.rows else 0
        return f"cut off after {last:.0f}s (no end line: interrupted or still running)"


class TimelineWriter:
    """Writes a campaign timeline row by row, flushed, so any prefix is readable."""

    def __init__(self, path: Path, header: dict):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.f = open(path, "x")  # never over an existing campaign
        self.f.write(TIMELINE_MAGIC + "\n")
        for k, v in header.items():
            self.f.write(f"# {k} {v}\n")
        self.f.write("\t".join(TIMELINE_COLUMNS) + "\n")
        self.f.flush()

    def row(self, values: dict) -> None:
        self.f.write("\t".join(str(values.get(c, "")) for c in TIMELINE_COLUMNS) + "\n")
        self.f.flush()

    def close(self, **end) -> None:
        if self.f.closed:
            return
        self.f.write("# ended " + " ".join(f"{k}={v}" for k, v in end.items()) + "\n")
        self.f.close()


def _number(text: str):
    return float(text) if "." in text else int(text)


def read_timeline(text: str, source: str = "") -> Campaign:
    """A campaign from a timeline's text (any prefix of one; see the module doc)."""
    c = Campaign(source)
    columns = None
    lines = text.split("\n")
    complete = text.endswith("\n")
    for i, line in enumerate(lines):
        if not line:
            continue
        if i == len(lines) - 1 and not complete:
            c.skipped += 1  # the last line was cut in half
            break
        if line.startswith("# ended"):
            c.finished = True
            for kv in line[len("# ended"):].split():
                k, _, v = kv.partition("=")
                c.end[k] = v
            continue
        if line.startswith("#"):
            if line.strip() != TIMELINE_MAGIC:
                key, _, value = line[1:].strip().partition(" ")
                c.header[key] = value.strip()
            continue
        cells = line.split("\t")
        if columns is None:
            if cells[0] == "seconds":
                columns = cells
            else:
                c.skipped += 1
            continue
        if len(cells) != len(columns):
            c.skipped += 1
            continue
        try:
            row = {k: (_number(v) if v not in ("", "-") else None) for k, v in zip(columns, cells)}
        except ValueError:
            c.skipped += 1
            continue
        c.rows.append(row)
    return c


def read_fuzz_log(text: str, source: str = "", header: dict | None = None) -> Campaign:
    """A campaign from a bare libFuzzer log: seconds from fork lines, else execs / exec/s."""
    c = Campaign(source, header=dict(header or {}), estimated=True)
    vm_states = None
    for line in text.splitlines():
        v = VMSTATE.match(line)
        if v:
            vm_states = int(v.group(1))
            continue
        s = parse_status(line)
        if s is None:
            continue
        if "seconds" not in s:
            s["seconds"] = s["execs"] / s["exec_s"] if s["exec_s"] else 0.0
        s["vm_states"] = vm_states
        c.rows.append(s)
    c.finished = "Done " in text and "stat::number_of_executed_units" in text
    if c.finished:
        c.end["status"] = "done"
    return c


AFL_COLUMNS = {"relative_time": "seconds", "total_execs": "execs", "execs_per_sec": "exec_s",
               "edges_found": "cov", "corpus_count": "corpus", "saved_crashes": "crashes"}


def read_afl_plot_data(text: str, source: str = "", header: dict | None = None) -> Campaign:
    """A campaign from AFL++'s plot_data (`fuzz --engine afl`): columns named by its `#`
    header line (relative_time in seconds, total_execs, execs_per_sec, edges_found,
    corpus_count, saved_crashes; AFL has no features or VM states)."""
    c = Campaign(source, header=dict(header or {}, engine="afl"))
    names = None
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if line.startswith("#"):
            names = [n.strip() for n in line[1:].split(",")]
            continue
        if names is None or (i == len(lines) - 1 and not text.endswith("\n")):
            c.skipped += 1
            continue
        cells = [v.strip() for v in line.split(",")]
        if len(cells) < len(names):
            c.skipped += 1
            continue
        row = {k: None for k in TIMELINE_COLUMNS}
        try:
            for name, value in zip(names, cells):
                if name in AFL_COLUMNS:
                    row[AFL_COLUMNS[name]] = float(value) if name in ("execs_per_sec", "relative_time") else int(value)
        except ValueError:
            c.skipped += 1
            continue
        c.rows.append(row)
    return c


def load_campaigns(work: Path) -> list[Campaign]:
    """Every campaign under work/fuzz/*/: its timelines, and fuzz.log when no timeline
    covers it (no timeline at all, or the log is newer than the newest timeline)."""
    out: list[Campaign] = []
    fuzz = work / "fuzz"
    if not fuzz.is_dir():
        return out
    for tdir in sorted(p for p in fuzz.iterdir() if p.is_dir()):
        timelines = sorted((tdir / "campaigns").glob("*.tsv")) if (tdir / "campaigns").is_dir() else []
        for t in timelines:
            c = read_timeline(t.read_text(errors="replace"), str(t))
            c.header.setdefault("target", tdir.name)
            out.append(c)
        log = tdir / "fuzz.log"
        if log.is_file() and (not timelines or log.stat().st_mtime > timelines[-1].stat().st_mtime + 5):
            c = read_fuzz_log(log.read_text(errors="replace"), str(log), {"target": tdir.name})
            if c.rows:
                out.append(c)
    afl = work / "afl"
    if afl.is_dir():
        for plot in sorted(afl.glob("*/*/plot_data")):
            target = plot.parent.parent.name
            c = read_afl_plot_data(plot.read_text(errors="replace"), str(plot), {"target": target + " (AFL++)"})
            if c.rows:
                out.append(c)
    return out


# ---------------------------------------------------------------------------------------
# Object graphs (harness/exec/dot.cc's DOT) and VM shapes.

DOT_OBJECT = re.compile(r'^\s*"o(\d+)" \[shape=ellipse, label="object \d+\\nref (-?\d+), resident (\d+), '
                        r'size (0x[0-9a-f]+)\\n([^"]*)"')
DOT_EDGE = re.compile(r'^\s*"o(\d+)" -> "o(\d+)" \[(.*)\]')
DOT_MEMOBJ = re.compile(r'^\s*"m(\d+)"')


def parse_dot(text: str) -> dict:
    """{objects: {id: {ref, resident, size, flags}}, shadow: {id: id}, copy: {id: id},
    memory_objects: n} from vmfuzz-replay's DOT."""
    objects, shadow, copy = {}, {}, {}
    memobjs = set()
    for line in text.splitlines():
        m = DOT_OBJECT.match(line)
        if m:
            objects[int(m.group(1))] = {"ref": int(m.group(2)), "resident": int(m.group(3)),
                                        "size": int(m.group(4), 16), "flags": m.group(5).split()}
            continue
        e = DOT_EDGE.match(line)
        if e:
            a, b, attrs = int(e.group(1)), int(e.group(2)), e.group(3)
            if "copy" in attrs and "dashed" in attrs:
                copy[a] = b
            elif "shadow" in attrs:
                shadow[a] = b
            continue
        mo = DOT_MEMOBJ.match(line)
        if mo:
            memobjs.add(int(mo.group(1)))
    return {"objects": objects, "shadow": shadow, "copy": copy, "memory_objects": len(memobjs)}


def vm_shape(graph: dict) -> dict:
    """The histogram's numbers for one state: chain depth and sharers of every object,
    objects that have a copy object, internal objects with a pager, external objects."""
    objects, shadow = graph["objects"], graph["shadow"]
    depths = []
    for oid in objects:
        d, cur, seen = 1, oid, {oid}
        while cur in shadow and shadow[cur] in objects and shadow[cur] not in seen:
            cur = shadow[cur]
            seen.add(cur)
            d += 1
        depths.append(d)
    return {
        "chain_depths": depths,
        "sharers": [o["ref"] for o in objects.values()],
        "copy_objects": len(graph["copy"]),
        "internal_pagers": sum(1 for o in objects.values() if "internal" in o["flags"] and "pager_created" in o["flags"]),
        "external_objects": sum(1 for o in objects.values() if "internal" not in o["flags"]),
    }


# ---------------------------------------------------------------------------------------
# Findings: work/fuzz/TARGET/crashes/ as ci/vmfuzz fuzz leaves it.

MIN_HEADER = re.compile(r"^# minimized from (\S+): (.*)$")


@dataclass
class Finding:
    target: str
    crash: Path                      # the engine's artifact
    minimized: Path | None = None    # CRASH.min.trace
    signature: str | None = None
    bug: str = ""                    # VMFUZZ_BUG it was found with (its stamp)
    count: int = 1                   # artifacts with this signature


def load_findings(work: Path) -> list[Finding]:
    """One Finding per distinct signature per target (the smallest minimized trace)."""
    out: list[Finding] = []
    fuzz = work / "fuzz"
    if not fuzz.is_dir():
        return out
    for tdir in sorted(p for p in fuzz.iterdir() if p.is_dir()):
        cdir = tdir / "crashes"
        if not cdir.is_dir():
            continue
        by_sig: dict[str, Finding] = {}
        crashes = sorted(p for p in cdir.iterdir() if p.is_file() and p.name.startswith(("crash-", "timeout-", "oom-", "leak-"))
                         and "." not in p.name)
        for crash in crashes:
            f = Finding(tdir.name, crash)
            stamp = cdir / (crash.name + ".stamp.json")
            if stamp.is_file():
                try:
                    f.bug = json.loads(stamp.read_text()).get("bugs", "") or ""
                except ValueError:
                    pass
            mins = sorted(cdir.glob(crash.name + ".min*.trace"), key=lambda p: (p.stat().st_size, p.name))
            if mins:
                f.minimized = mins[0]
                first = mins[0].read_text(errors="replace").split("\n", 1)[0]
                m = MIN_HEADER.match(first)
                if m:
                    f.signature = m.group(2)
            key = f.signature or f"(not minimized) {crash.name}"
            if key in by_sig:
                by_sig[key].count += 1
                old = by_sig[key]
                if f.minimized and (not old.minimized or f.minimized.stat().st_size < old.minimized.stat().st_size):
                    f.count = old.count
                    by_sig[key] = f
            else:
                by_sig[key] = f
        out += sorted(by_sig.values(), key=lambda f: (-f.count, f.signature or ""))
    return out


# ---------------------------------------------------------------------------------------
# Kill matrices (ci/mutants.py's JSON) and their comparison.


class BadInput(Exception):
    """Unusable input: the message names the file (and line when there is one)."""


def load_mutants_json(path: Path) -> dict:
    """A mutants document ({"mutants": [...]}); BadInput naming the file otherwise."""
    try:
        text = path.read_text()
    except OSError as e:
        raise BadInput(f"{path}: cannot read ({e.strerror})")
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise BadInput(f"{path}:{getattr(e, 'lineno', 1)}: not JSON ({e.msg if hasattr(e, 'msg') else e})")
    if not isinstance(doc, dict) or not isinstance(doc.get("mutants"), list):
        raise BadInput(f"{path}:1: not a mutants document (no \"mutants\" list; write one with "
                       "ci/vmfuzz mutants --json > FILE)")
    for i, cell in enumerate(doc["mutants"]):
        if not isinstance(cell, dict) or "name" not in cell or "engine" not in cell:
            raise BadInput(f"{path}: mutants[{i}] has no name/engine")
    return doc


def trial_times(cell: dict, path: str = "?") -> list[float | None]:
    """Seconds to kill of every trial of a cell (None: not caught in that trial)."""
    times = cell.get("trial_seconds")
    if not isinstance(times, list):
        raise BadInput(f"{path}: {cell.get('name')}/{cell.get('engine')} has no per-trial times "
                       "(\"trial_seconds\"): it was written before --baseline existed; run mutants again")
    return [None if t is None else float(t) for t in times]


def a12_faster(new: list[float | None], old: list[float | None]) -> float:
    """Vargha-Delaney A12 for time to kill: P(a new trial kills sooner than an old one)
    + 0.5 P(tie); a trial that did not kill counts as slower than every kill."""
    inf = float("inf")
    xs = [inf if t is None else t for t in new]
    ys = [inf if t is None else t for t in old]
    if not xs or not ys:
        return 0.5
    return sum((x < y) + 0.5 * (x == y) for x in xs for y in ys) / (len(xs) * len(ys))


def median_time(times: list[float | None]) -> float | None:
    """Median seconds to kill over every trial, a miss counting as infinitely slow
    (None when the median is a miss)."""
    xs = sorted(float("inf") if t is None else t for t in times)
    if not xs:
        return None
    mid = len(xs) // 2
    m = xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2
    return None if m == float("inf") else m


def verdict(a12: float, p: float | None, alpha: float = 0.05) -> str:
    """better / worse / no evidence, for a new run against its baseline."""
    if p is None or p >= alpha or a12 == 0.5:
        return "no evidence"
    return "better" if a12 > 0.5 else "worse"
