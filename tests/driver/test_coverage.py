"""Tests of ci/coverage.py (`ci/vmfuzz coverage --from-empty`): reading llvm-cov's output.

Run: python3 -m unittest discover -s tests/driver
"""
import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "ci"))
import coverage  # noqa: E402  (ci/coverage.py)

sys.path.pop(0)


def completed(stdout: str):
    return subprocess.CompletedProcess(args=[], returncode=0, stdout=stdout, stderr="")


def export(files):
    """llvm-cov export's JSON: files of (path, segments [line, col, count, has_count, entry, gap])."""
    return json.dumps({"data": [{"files": [{"filename": name, "segments": segs} for name, segs in files]}]})


class UnreachedLinesTest(unittest.TestCase):
    def unreached(self, files):
        with mock.patch.object(coverage.subprocess, "run", return_value=completed(export(files))):
            return coverage.unreached_lines(["bin"], Path("x.profdata"))

    def test_lists_lines_whose_every_region_ran_zero_times(self):
        got = self.unreached([(f"{ROOT}/vm/vm_fault.cc", [
            [10, 1, 5, True, True, False],   # ran
            [11, 3, 0, True, True, False],   # never ran
            [12, 3, 0, True, True, False],   # a region that never ran...
            [12, 9, 2, True, True, False],   # ...and one that ran on the same line: reached
            [13, 1, 0, True, False, False],  # not a region entry (a region resumes): no code starts
            [14, 1, 0, True, True, True],    # a gap region: no code
            [15, 1, 0, False, False, False]]),  # end of a region
            (f"{ROOT}/harness/exec/executor.cc", [[3, 1, 0, True, True, False]])])  # not vm/
        self.assertEqual(list(got), ["vm/vm_fault.cc"])
        self.assertEqual([n for n, _ in got["vm/vm_fault.cc"]], [11])
        # The source line comes from the tree.
        self.assertEqual(got["vm/vm_fault.cc"][0][1],
                         (ROOT / "vm" / "vm_fault.cc").read_text().splitlines()[10].rstrip())

    def test_a_header_under_a_layer_symlink_is_one_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            link = Path(tmp) / "layers" / "vmfuzz_vm"
            link.mkdir(parents=True)
            (link / "vm").symlink_to(ROOT / "vm")
            got = self.unreached([(f"{link}/vm/vm_object.h", [[3, 1, 0, True, True, False], [4, 1, 0, True, True, False]]),
                                  (f"{ROOT}/vm/vm_object.h", [[3, 1, 7, True, True, False]])])
            self.assertEqual([n for n, _ in got["vm/vm_object.h"]], [4])  # line 3 ran under one path
            summary = {"data": [{"files": [
                {"filename": f"{link}/vm/vm_object.h", "summary": {"lines": {"count": 4, "covered": 1}}},
                {"filename": f"{ROOT}/vm/vm_object.h", "summary": {"lines": {"count": 4, "covered": 3}}}]}]}
            with mock.patch.object(coverage.subprocess, "run", return_value=completed(json.dumps(summary))):
                self.assertEqual(coverage.line_summary(["bin"], Path("x.profdata")), {"vm/vm_object.h": (4, 3)})


class LineSummaryTest(unittest.TestCase):
    def test_keeps_vm_files_relative_to_the_tree(self):
        export = {"data": [{"files": [
            {"filename": f"{ROOT}/vm/vm_fault.cc", "summary": {"lines": {"count": 100, "covered": 87}}},
            {"filename": f"{ROOT}/harness/exec/executor.cc", "summary": {"lines": {"count": 5, "covered": 1}}},
            {"filename": f"{ROOT}/vm/machine/mmu.cc", "summary": {"lines": {"count": 10, "covered": 10}}}]}]}
        with mock.patch.object(coverage.subprocess, "run", return_value=completed(json.dumps(export))):
            got = coverage.line_summary(["bin"], Path("x.profdata"))
        self.assertEqual(got, {"vm/machine/mmu.cc": (10, 10), "vm/vm_fault.cc": (100, 87)})

    def test_percent(self):
        self.assertEqual(coverage.pct(87, 100), " 87.0%")
        self.assertEqual(coverage.pct(0, 0), "    -")


if __name__ == "__main__":
    unittest.main()
