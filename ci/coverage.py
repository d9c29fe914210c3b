"""coverage — how much of vm/ a campaign from an empty corpus reaches, beside what the
checked-in corpus reaches, and which lines neither reaches (standard library only).

Theory of operation
-------------------
`ci/vmfuzz coverage --from-empty MINUTES` calls `compare(minutes, seed)` after the
ordinary coverage run. Steps:

1. The `fuzz` preset's vm_diff_fuzzer (libFuzzer, ASan+UBSan: the binary a campaign
   uses) fuzzes for MINUTES from an empty corpus, `-seed=SEED`, with the target's
   options and dictionary. Its corpus is written to a new directory
   work/coverage-empty/<stamp>/corpus (nothing earlier is removed or overwritten: the
   plain coverage run rewrites work/coverage, never this);
   a crash is kept in its crashes/ beside it and reported, and the corpus found up to
   then is still measured.
2. The `coverage` preset's replay programs (clang source-based coverage) run two sets,
   each into its own profile:
     corpus — every checked-in corpus (corpus/TARGET) and every trace of corpus/traces,
              exactly what the plain `ci/vmfuzz coverage` measures;
     empty  — the campaign's corpus through vm_diff_replay.
3. `llvm-cov export -summary-only` gives each vm/ file's line counts under each profile;
   one table prints both side by side (work/coverage/compare.txt, and compare.json for
   scripts: {"files": {PATH: {"lines", "corpus", "empty"}}, "total": {...}}).
4. The two profiles are merged and `llvm-cov export`'s segments list every line of vm/
   where code starts and that ran zero times under both: work/coverage/unreached.txt, by file, with the source
   text, so each one can be explained (docs/bugs.md, "What no engine reaches") or reached.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import vmfuzzlib as lib

LLVM_COV = "llvm-cov-14"
LLVM_PROFDATA = "llvm-profdata-14"
# Only the VM's own sources count: the harness, tests and the standard library do not.
VM_FILE = re.compile(r"vm/")
IGNORE = r"-ignore-filename-regex=(/usr/|tests/|fuzz/|props/|harness/|reference_model/|vocab/|linux/|threeway/)"


def run_campaign(minutes: float, seed: int, out: Path) -> tuple[Path, list[Path]]:
    """libFuzzer from an empty corpus for `minutes`; returns (corpus dir, crash files)."""
    target = "vm_diff"
    lib.ensure_built("fuzz", targets=[f"{target}_fuzzer"])
    corpus, crashes = out / "corpus", out / "crashes"
    corpus.mkdir(parents=True)
    crashes.mkdir()
    cmd = [str(lib.fuzzer_binary(target)), str(corpus), f"-max_total_time={int(minutes * 60)}",
           f"-seed={seed}", f"-artifact_prefix={crashes}/", "-print_final_stats=1",
           *lib.libfuzzer_options(target)]
    lib.say(f"fuzzing {target} from an empty corpus for {minutes:g} min (seed {seed}); log: {out / 'fuzz.log'}")
    with open(out / "fuzz.log", "w") as log:
        rc = subprocess.call(cmd, cwd=str(lib.ROOT), stdout=log, stderr=subprocess.STDOUT)
    found = sorted(crashes.iterdir())
    if rc != 0 and not found:
        raise lib.CommandFailed(f"{target}_fuzzer exited {rc} without a crash file; see {out / 'fuzz.log'}")
    return corpus, found


def profile(runs: list[list[str]], dest: Path) -> Path:
    """Run each command with LLVM_PROFILE_FILE under dest/profiles; merge into dest.profdata."""
    raw = dest.parent / (dest.name + "-profiles")
    raw.mkdir(parents=True)
    env = dict(os.environ, LLVM_PROFILE_FILE=str(raw / "%p-%m.profraw"))
    for cmd in runs:
        # Replays of crash inputs exit non-zero by design; the profile is what counts.
        subprocess.call(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    profdata = dest.with_suffix(".profdata")
    lib.run([LLVM_PROFDATA, "merge", "-sparse", *sorted(map(str, raw.glob("*.profraw"))), "-o", str(profdata)],
            show="failure")
    return profdata


def object_args(objects: list[str]) -> list[str]:
    return [objects[0], *[a for o in objects[1:] for a in ("-object", o)]]


def tree_name(filename: str) -> str:
    """A source path relative to the tree. Each library sees its layer's folders through
    symlinks (build/P/layers/TARGET/vm -> vm), so one header has a path per library that
    includes it: resolve the link, so that they count as the one file they are."""
    return str(Path(filename).resolve()).replace(str(lib.ROOT) + "/", "")


def line_summary(objects: list[str], profdata: Path) -> dict[str, tuple[int, int]]:
    """{vm/ file relative to the tree: (lines with code, lines covered)}. A header seen
    under several paths counts once, with the most lines any path gives it and the most
    it covered (llvm-cov counts its inline functions per path)."""
    out = subprocess.run([LLVM_COV, "export", "-summary-only", *object_args(objects),
                          f"-instr-profile={profdata}", IGNORE], capture_output=True, text=True, check=True)
    files: dict[str, tuple[int, int]] = {}
    for f in json.loads(out.stdout)["data"][0]["files"]:
        name = tree_name(f["filename"])
        if VM_FILE.match(name):
            lines = f["summary"]["lines"]
            seen = files.get(name, (0, 0))
            files[name] = (max(seen[0], lines["count"]), max(seen[1], lines["covered"]))
    return dict(sorted(files.items()))


def unreached_lines(objects: list[str], profdata: Path) -> dict[str, list[tuple[int, str]]]:
    """{vm/ file: [(line, source)]} of the lines where code starts and never ran.

    From llvm-cov's segments, not its line counts: a line counts when a code region
    (not a gap) starts on it, and it is unreached when every region starting on it ran
    zero times. llvm-cov's own per-line count also gives a line the count of the region
    it sits in, which after an `assert` is the never-taken failure branch: the line after
    every assert would be listed. Under several paths of one header (layers), a line
    some path ran is reached."""
    out = subprocess.run([LLVM_COV, "export", *object_args(objects), f"-instr-profile={profdata}", IGNORE],
                         capture_output=True, text=True, check=True)
    best: dict[str, dict[int, int]] = {}
    for f in json.loads(out.stdout)["data"][0]["files"]:
        name = tree_name(f["filename"])
        if not VM_FILE.match(name):
            continue
        lines = best.setdefault(name, {})
        for line, _col, count, has_count, is_entry, *rest in f["segments"]:
            gap = bool(rest[0]) if rest else False
            if has_count and is_entry and not gap:
                lines[line] = max(lines.get(line, 0), count)
    result = {}
    for name, lines in sorted(best.items()):
        zero = sorted(n for n, c in lines.items() if c == 0)
        if zero:
            source = (lib.ROOT / name).read_text().splitlines() if (lib.ROOT / name).is_file() else []
            result[name] = [(n, source[n - 1].rstrip() if n <= len(source) else "") for n in zero]
    return result


def pct(covered: int, lines: int) -> str:
    return f"{100.0 * covered / lines:5.1f}%" if lines else "    -"


def compare(minutes: float, seed: int, corpus_runs: list[list[str]], objects: list[str], out: Path,
            campaigns: Path) -> int:
    """Steps 1-4 of the module doc; `corpus_runs` and `objects` are the plain coverage run's,
    `out` its output directory (rewritten by every coverage run), `campaigns` where each
    campaign keeps its own directory (never removed)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    campaign_dir = lib.unused_path(campaigns / stamp)
    corpus, crashes = run_campaign(minutes, seed, campaign_dir)
    for c in crashes:
        lib.say(f"the campaign found {c} (kept); its corpus up to then is measured")
    bdir = lib.build_dir("coverage")
    vm_diff_replay = str(bdir / "fuzz" / "vm_diff" / "vm_diff_replay")
    base = profile(corpus_runs, campaign_dir / "corpus-profile")
    empty = profile([[vm_diff_replay, str(corpus)]], campaign_dir / "empty-profile")
    merged = campaign_dir / "both.profdata"
    lib.run([LLVM_PROFDATA, "merge", "-sparse", str(base), str(empty), "-o", str(merged)], show="failure")

    a, b = line_summary(objects, base), line_summary(objects, empty)
    units = sum(1 for _ in corpus.iterdir())
    stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", (campaign_dir / "fuzz.log").read_text(), re.M))
    rows = [f"vm/ line coverage: the checked-in corpus and traces, and a {minutes:g}-minute vm_diff campaign "
            f"from an empty corpus (seed {seed}, {units} units kept, {len(crashes)} crash file(s))",
            f"{'file':32} {'lines':>6} {'corpus':>8} {'empty':>8}"]
    total = [0, 0, 0]
    table = {}
    for name in sorted(set(a) | set(b)):
        lines = max(a.get(name, (0, 0))[0], b.get(name, (0, 0))[0])
        ca, cb = a.get(name, (lines, 0))[1], b.get(name, (lines, 0))[1]
        total = [total[0] + lines, total[1] + ca, total[2] + cb]
        table[name] = {"lines": lines, "corpus": ca, "empty": cb}
        rows.append(f"{name:32} {lines:6} {pct(ca, lines):>8} {pct(cb, lines):>8}")
    rows.append(f"{'TOTAL':32} {total[0]:6} {pct(total[1], total[0]):>8} {pct(total[2], total[0]):>8}")
    unreached = unreached_lines(objects, merged)
    count = sum(len(v) for v in unreached.values())
    rows.append(f"lines of vm/ that neither reaches: {count} (listed in {out / 'unreached.txt'})")
    rows.append(f"campaign: {stats.get('number_of_executed_units', '?')} runs, "
                f"{stats.get('average_exec_per_sec', '?')} exec/s, peak RSS {stats.get('peak_rss_mb', '?')} MB "
                f"(libFuzzer's final stats, {campaign_dir / 'fuzz.log'})")
    text = "\n".join(rows) + "\n"
    (out / "compare.txt").write_text(text)
    (out / "compare.json").write_text(json.dumps(
        {"minutes": minutes, "seed": seed, "units": units, "stats": {k: int(v) for k, v in stats.items()}, "crashes": [str(c) for c in crashes], "files": table,
         "total": {"lines": total[0], "corpus": total[1], "empty": total[2]}}, indent=1) + "\n")
    listing = []
    for name, lines in unreached.items():
        listing.append(f"{name}: {len(lines)}")
        listing += [f"  {n:5}  {src.strip()}" for n, src in lines]
    (out / "unreached.txt").write_text("\n".join(listing) + "\n")
    print(text, end="")
    return 1 if crashes else 0
