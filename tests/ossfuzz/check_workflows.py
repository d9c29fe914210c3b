"""Do the GitHub workflows parse, and do the ClusterFuzzLite ones ask for what
ClusterFuzzLite's documented setup needs?

Usage: check_workflows.py SOURCE_DIR        (run by `ci/vmfuzz test`)
       check_workflows.py --self-test       (broken variants must be refused)
Runs under Debian's python3 (python3-yaml; `ci/vmfuzz setup` installs it).

Every .github/workflows/*.yml must parse as YAML and have a name, a trigger (`on`; YAML 1.1
reads the bare key as true) and jobs whose steps each `uses` an action or `run`s a
command. Then ClusterFuzzLite's:
  - PR fuzzing (mode code-change), batch fuzzing (mode batch, on a schedule, with address
    and undefined), corpus pruning (mode prune) and coverage (mode coverage, built with
    sanitizer coverage) are all present;
  - every step uses google/clusterfuzzlite/actions/build_fuzzers or run_fuzzers at @v1;
    build and run of one job use the same sanitizer; language matches
    .clusterfuzzlite/project.yaml; fuzz-seconds is a positive number;
  - every run_fuzzers step of batch, prune and coverage names the storage repository
    (storage-repo, storage-repo-branch), so corpora persist between runs once it is set;
  - cron lines have five fields; ${{ }} expressions are closed.
Exit 0 when all hold; 1 with one line per problem, naming the file.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

MODES = {"code-change", "batch", "prune", "coverage"}
ACTION = re.compile(r"^google/clusterfuzzlite/actions/(build_fuzzers|run_fuzzers)@v1$")


def trigger(doc: dict):
    return doc.get("on", doc.get(True))


def check(docs: dict[str, object], project_language: str) -> list[str]:
    """Problems of the workflow documents {file name: parsed YAML}."""
    errors: list[str] = []
    modes: dict[str, list[str]] = {}
    for name, doc in docs.items():
        if not isinstance(doc, dict):
            errors.append(f"{name}: not a mapping")
            continue
        if not doc.get("name"):
            errors.append(f"{name}: no name")
        on = trigger(doc)
        if not on:
            errors.append(f"{name}: no trigger (on:)")
        jobs = doc.get("jobs")
        if not isinstance(jobs, dict) or not jobs:
            errors.append(f"{name}: no jobs")
            continue
        for jname, job in jobs.items():
            where = f"{name}: job {jname}"
            if not isinstance(job, dict) or "runs-on" not in job or not isinstance(job.get("steps"), list):
                errors.append(f"{where}: needs runs-on and a list of steps")
                continue
            build_san, run_san = None, None
            for i, step in enumerate(job["steps"]):
                if not isinstance(step, dict) or not ("uses" in step or "run" in step):
                    errors.append(f"{where}: step {i + 1} neither uses an action nor runs a command")
                    continue
                uses = step.get("uses", "")
                if "clusterfuzzlite" not in uses:
                    continue
                m = ACTION.match(uses)
                if not m:
                    errors.append(f"{where}: {uses}: not google/clusterfuzzlite/actions/(build|run)_fuzzers@v1")
                    continue
                w = step.get("with") or {}
                if m.group(1) == "build_fuzzers":
                    build_san = w.get("sanitizer", "address")
                    if w.get("language") != project_language:
                        errors.append(f"{where}: language {w.get('language')!r}, project.yaml says "
                                      f"{project_language!r}")
                    continue
                run_san = w.get("sanitizer", "address")
                mode = w.get("mode")
                if mode not in MODES:
                    errors.append(f"{where}: mode {mode!r} is not one of {sorted(MODES)}")
                    continue
                modes.setdefault(mode, []).append(name)
                secs = w.get("fuzz-seconds")
                if not isinstance(secs, int) or secs <= 0:
                    errors.append(f"{where}: fuzz-seconds {secs!r} is not a positive number")
                if mode != "code-change" and not (w.get("storage-repo") and w.get("storage-repo-branch")):
                    errors.append(f"{where}: mode {mode} without storage-repo and storage-repo-branch")
                if mode == "coverage" and run_san != "coverage":
                    errors.append(f"{where}: mode coverage needs sanitizer coverage (has {run_san!r})")
                if mode == "batch":
                    if not (isinstance(on, dict) and on.get("schedule")):
                        errors.append(f"{name}: batch fuzzing without a schedule")
                    sans = ((job.get("strategy") or {}).get("matrix") or {}).get("sanitizer", [])
                    for want in ("address", "undefined"):
                        if want not in sans:
                            errors.append(f"{where}: batch fuzzing matrix lacks sanitizer {want}")
            if build_san is not None and run_san is not None and build_san != run_san:
                errors.append(f"{where}: built with sanitizer {build_san!r}, run with {run_san!r}")
        if isinstance(on, dict):
            for entry in on.get("schedule") or []:
                cron = (entry or {}).get("cron", "")
                if len(str(cron).split()) != 5:
                    errors.append(f"{name}: cron {cron!r} does not have five fields")
    for mode in sorted(MODES):
        if mode not in modes:
            errors.append(f"no workflow runs ClusterFuzzLite in mode {mode}")
    return errors


def unclosed_expressions(name: str, text: str) -> list[str]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.count("${{") != line.count("}}"):
            out.append(f"{name}:{n}: unclosed ${{{{ }}}} expression")
    return out


def load(src: Path) -> tuple[dict, str, list[str]]:
    errors, docs = [], {}
    for path in sorted((src / ".github" / "workflows").glob("*.yml")):
        text = path.read_text()
        errors += unclosed_expressions(path.name, text)
        try:
            docs[path.name] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            errors.append(f"{path.name}{line}: not YAML: {getattr(e, 'problem', e)}")
    project = yaml.safe_load((src / ".clusterfuzzlite" / "project.yaml").read_text()) or {}
    return docs, project.get("language", ""), errors


def self_test(src: Path) -> int:
    """The check must refuse each of these changes to the real workflows."""
    import copy
    docs, lang, errors = load(src)
    if errors or check(docs, lang):
        print("self-test: the real workflows do not pass to begin with")
        return 1

    def job(d, f, j):
        return d[f]["jobs"][j]

    breakages = {
        "batch without undefined": lambda d: job(d, "cflite_batch.yml", "BatchFuzzing")["strategy"]["matrix"]
        .__setitem__("sanitizer", ["address"]),
        "batch without schedule": lambda d: d["cflite_batch.yml"].__setitem__(True, {"workflow_dispatch": None}),
        "prune without storage": lambda d: job(d, "cflite_cron.yml", "Pruning")["steps"][1]["with"]
        .pop("storage-repo"),
        "coverage run with address": lambda d: job(d, "cflite_cron.yml", "Coverage")["steps"][1]["with"]
        .__setitem__("sanitizer", "address"),
        "no coverage job": lambda d: d["cflite_cron.yml"]["jobs"].pop("Coverage"),
        "wrong language": lambda d: job(d, "cflite_batch.yml", "BatchFuzzing")["steps"][0]["with"]
        .__setitem__("language", "rust"),
        "unpinned action": lambda d: job(d, "cflite_batch.yml", "BatchFuzzing")["steps"][1]
        .__setitem__("uses", "google/clusterfuzzlite/actions/run_fuzzers@main"),
    }
    bad = 0
    for what, breakage in breakages.items():
        d = copy.deepcopy(docs)
        breakage(d)
        if not check(d, lang):
            print(f"self-test: not refused: {what}")
            bad += 1
    if unclosed_expressions("x", "a: ${{ secrets.X }\n") == []:
        print("self-test: an unclosed expression was not refused")
        bad += 1
    print(f"self-test: {len(breakages) + 1 - bad}/{len(breakages) + 1} broken variants refused")
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--self-test":
        return self_test(Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2])
    if len(argv) != 1:
        print("usage: check_workflows.py SOURCE_DIR | --self-test [SOURCE_DIR]")
        return 2
    src = Path(argv[0])
    docs, lang, errors = load(src)
    errors += check(docs, lang)
    for e in errors:
        print("FAIL: " + e)
    print(f"workflows checked: {len(docs)} files, {len(errors)} problems")
    if errors:
        return 1
    return self_test(src)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
