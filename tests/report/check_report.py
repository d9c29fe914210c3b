"""Does `ci/vmfuzz report` write a page a browser shows whole: plots, a finding with its graph,
the kill matrix, coverage; and does it read a campaign cut off mid-line?

Run by `ci/vmfuzz test` (after the dev build: it needs vmfuzz-replay), or by hand:
    python3 tests/report/check_report.py [--keep DIR]

Steps:
  1. Build a work folder in a temporary directory: two campaign timelines of vm_diff (one
     finished, one cut off in the middle of a row, as Ctrl-C leaves it), a finding (the
     missed_push trace of the README, encoded as a crash input, with its minimized trace
     and a stamp saying VMFUZZ_BUG=missed_push), a few corpus inputs, a kill matrix with a
     baseline comparison, and an llvm-cov summary.
  2. `ci/vmfuzz report` on an empty folder must exit 2 and say what to run; on the work
     folder it must exit 0 and write index.html; asked to write into a folder of the
     user's (files, no report of ours) it must exit 2 and leave it as it was.
  3. Structural checks (always): every section is there, every <img> names an SVG beside
     the page that parses as SVG with a size, nothing refers outside the page's folder
     (no http:, https:, file: or absolute paths), the finding's replay text shows the
     divergence, the cut-off campaign is labelled so.
  4. In headless Chromium (when installed): after load every image decoded
     (body[data-images-ok] = "n/n"), no console message, and a screenshot that is not
     blank (checked with matplotlib under Debian's python3). Without Chromium this step
     says loudly that it did not run, and the run ends with "structural checks only".
Exit 0 when every check held; 1 otherwise (each failure printed).
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "ci"))
import browser  # noqa: E402  (ci/browser.py)

_loader = importlib.machinery.SourceFileLoader("vmfuzz_driver_report", str(ROOT / "ci" / "vmfuzz"))
_spec = importlib.util.spec_from_loader(_loader.name, _loader)
driver = importlib.util.module_from_spec(_spec)
_loader.exec_module(driver)

MISSED_PUSH = """config
allocate t0 0x10000 0x2000
inherit t0 0xf000 0x2000 share
fork t0 t1
vm_read t0 0x10000 0x1 c0
write t0 0x10000 "one"
copyout t0 c0
read t0 0x12000 0x1
"""
SIGNATURE = "vmfuzz divergence: result_mismatch in read [bytes]"


def timeline(rows: int, cut: bool) -> str:
    head = ["# vmfuzz campaign timeline v1", "# target vm_diff", "# engine libfuzzer", "# jobs 1",
            "# budget_s 60", f"# started 2026-01-0{2 if cut else 1}T10:00:00Z", "# bug ",
            "seconds\texecs\texec_s\tcov\tft\tcorpus\tvm_states\tcrashes"]
    body = [f"{i * 2.0:.1f}\t{i * 900}\t{450 + i}\t{3500 + 12 * i}\t{13000 + 300 * i}\t{73 + 20 * i}\t{150 + i}\t0"
            for i in range(1, rows + 1)]
    text = "\n".join(head + body) + "\n"
    if cut:
        return text + "61.0\t27450\t4"  # a row cut in half: no newline, too few cells
    return text + "# ended status=ok seconds=60.0\n"


def make_work(work: Path, replay: Path) -> None:
    t = work / "fuzz" / "vm_diff"
    (t / "campaigns").mkdir(parents=True)
    (t / "campaigns" / "20260101T100000Z.tsv").write_text(timeline(30, cut=False))
    (t / "campaigns" / "20260102T100000Z.tsv").write_text(timeline(20, cut=True))
    crashes = t / "crashes"
    crashes.mkdir()
    trace = crashes / "crash-0001.min.trace"
    trace.write_text(f"# minimized from crash-0001: {SIGNATURE}\n" + MISSED_PUSH)
    enc = subprocess.run([str(replay), "--encode", str(trace), str(crashes / "crash-0001")], capture_output=True,
                         text=True)
    if enc.returncode != 0:
        raise RuntimeError(f"vmfuzz-replay --encode failed: {enc.stderr}")
    (crashes / "crash-0001.stamp.json").write_text(json.dumps({"file": "crash-0001", "bugs": "missed_push"}))
    corpus = t / "corpus"
    corpus.mkdir()
    for p in sorted((ROOT / "corpus" / "vm_diff").iterdir())[:12]:
        shutil.copyfile(p, corpus / p.name)
    runs = work / "mutants" / "runs"
    runs.mkdir(parents=True)
    cells = [{"name": "missed_push", "engine": "libfuzzer", "caught": True, "seconds": 0.6, "trace_ops": 7,
              "trials": 3, "trials_caught": 3, "trial_seconds": [0.5, 0.6, 0.9], "signature": SIGNATURE},
             {"name": "missed_push", "engine": "libfuzzer_empty", "caught": False, "seconds": None, "trace_ops": None,
              "trials": 3, "trials_caught": 0, "trial_seconds": [None, None, None], "signature": None}]
    comparison = [{"name": "missed_push", "engine": "libfuzzer", "trials_baseline": 3, "trials_new": 3,
                   "median_baseline": 1.2, "median_new": 0.6, "killed_baseline": 3, "killed_new": 3, "a12": 0.89,
                   "p": 0.1, "verdict": "no evidence", "note": "3 vs 3 trials cannot reach p < 0.05"}]
    (runs / "20260103T100000Z.json").write_text(json.dumps(
        {"mutants": cells, "settings": "ci/vmfuzz mutants --engine libfuzzer --time 10 --trials 3",
         "baseline": {"file": "old.json", "comparison": comparison}}))
    (work / "coverage").mkdir()
    (work / "coverage" / "summary.txt").write_text(
        "Filename  Regions  Missed Regions  Cover\n---\nvm/vm_object.cc  100  10  90.00%\n---\nTOTAL  100  10  90.00%\n")


def structural(out: Path, errors: list[str]) -> int:
    """Checks of the page's HTML and SVG files; returns the number of images."""
    page = (out / "index.html").read_text()
    for anchor in ("campaigns", "vm-states", "findings", "mutants", "coverage"):
        if f"id='{anchor}'" not in page:
            errors.append(f"section #{anchor} missing")
    refs = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page)
    for ref in refs:
        if ref.startswith("#"):
            continue
        if re.match(r"^(?:[a-z]+:|/)", ref):
            errors.append(f"external or absolute reference: {ref}")
    images = re.findall(r"<img [^>]*src='([^']+)'", page)
    if len(images) < 4:
        errors.append(f"only {len(images)} images (want growth, VM states, finding graph, kill matrix)")
    for name in images:
        path = out / name
        if not path.is_file() or path.stat().st_size < 500:
            errors.append(f"{name}: missing or nearly empty")
            continue
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            errors.append(f"{name}: not XML ({e})")
            continue
        if not root.tag.endswith("svg") or not (root.get("width") and root.get("height")):
            errors.append(f"{name}: not an SVG with a width and height")
        if len(list(root.iter())) < 20:
            errors.append(f"{name}: almost nothing drawn ({len(list(root.iter()))} elements)")
    if not any(n.startswith("finding-") for n in images):
        errors.append("no object graph of the finding")
    if "result_mismatch" not in page or "first differing byte" not in page:
        errors.append("the finding's replay text (with VMFUZZ_BUG=missed_push) is not on the page")
    if SIGNATURE not in page:
        errors.append("the finding's signature is not on the page")
    if "cut off after" not in page:
        errors.append("the cut-off campaign is not labelled as cut off")
    if "1 unreadable line" not in page:
        errors.append("the half-written last row is not reported as skipped")
    if "A12" not in page or "0.89" not in page:
        errors.append("the baseline comparison (A12) is not on the page")
    if "TOTAL" not in page:
        errors.append("the llvm-cov summary is not on the page")
    return len(images)


def in_browser(out: Path, n_images: int, shot: Path, errors: list[str]) -> None:
    dom, console = browser.dump_dom(out / "index.html")
    m = re.search(r'data-images-ok="(\d+)/(\d+)"', dom)
    if not m:
        errors.append("the page's load check did not run (no data-images-ok in the DOM)")
    elif m.group(1) != m.group(2) or int(m.group(2)) != n_images:
        errors.append(f"images decoded in Chromium: {m.group(1)}/{m.group(2)} (page has {n_images})")
    for msg in console:
        errors.append(f"console: {msg}")
    console = browser.screenshot(out / "index.html", shot)
    for msg in console:
        errors.append(f"console (screenshot): {msg}")
    python = driver.debian_python("matplotlib", "numpy")
    code = ("import sys, matplotlib.image as im, numpy as np\n"
            "a = im.imread(sys.argv[1])[..., :3]\n"
            "ink = float((a.min(axis=2) < 0.9).mean())\n"
            "colours = len(np.unique((a * 255).astype(np.uint8).reshape(-1, 3), axis=0))\n"
            "print(a.shape[1], a.shape[0], ink, colours)\n")
    proc = subprocess.run([python, "-c", code, str(shot)], capture_output=True, text=True)
    if proc.returncode != 0:
        errors.append(f"cannot read the screenshot: {proc.stderr.strip()[-300:]}")
        return
    w, h, ink, colours = proc.stdout.split()
    print(f"screenshot {shot}: {w}x{h}, {float(ink) * 100:.1f}% ink, {colours} colours")
    if float(ink) < 0.03 or int(colours) < 50:
        errors.append(f"the screenshot looks blank ({float(ink) * 100:.1f}% ink, {colours} colours)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", metavar="DIR", help="keep the work folder, page and screenshot here")
    args = ap.parse_args()
    errors: list[str] = []
    replay = driver.report_replay_binary()
    if replay is None:
        print("FAIL: no vmfuzz-replay built (run ci/vmfuzz build)")
        return 1
    with tempfile.TemporaryDirectory(prefix="vmfuzz-report-test-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        empty, work, out = base / "empty", base / "work", base / "page"
        empty.mkdir()
        proc = subprocess.run([sys.executable, str(ROOT / "ci" / "vmfuzz"), "report", str(empty)],
                              capture_output=True, text=True)
        if proc.returncode != 2 or "ci/vmfuzz fuzz" not in proc.stderr:
            errors.append(f"report on an empty folder: exit {proc.returncode}, said {proc.stderr.strip()!r}")
        make_work(work, replay)
        proc = subprocess.run([sys.executable, str(ROOT / "ci" / "vmfuzz"), "report", str(work), "--out", str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not (out / "index.html").is_file():
            print(f"FAIL: ci/vmfuzz report exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
            return 1
        n = structural(out, errors)
        # A folder of the user's is never written into (nor an index.html we did not write).
        theirs = base / "theirs"
        theirs.mkdir()
        (theirs / "notes.txt").write_text("mine\n")
        proc = subprocess.run([sys.executable, str(ROOT / "ci" / "vmfuzz"), "report", str(work), "--out", str(theirs)],
                              capture_output=True, text=True)
        if proc.returncode != 2 or sorted(p.name for p in theirs.iterdir()) != ["notes.txt"]:
            errors.append(f"report into a folder of the user's: exit {proc.returncode}, "
                          f"left {sorted(p.name for p in theirs.iterdir())}")
        browser_ran = browser.chromium() is not None
        if browser_ran:
            in_browser(out, n, base / "screenshot.png", errors)
        else:
            print("=" * 78 + "\nBROWSER CHECK NOT RUN: chromium is not installed here (sudo apt-get install -y "
                  "chromium).\nOnly the structural checks of the HTML and SVG files ran.\n" + "=" * 78)
        for e in errors:
            print("FAIL: " + e)
        what = "in headless Chromium" if browser_ran else "STRUCTURAL CHECKS ONLY (no chromium)"
        print(f"report checked {what}: {n} images, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
