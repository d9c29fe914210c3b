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


SHOW = f"""{ROOT}/vm/vm_object.cc:
    1|       |// a comment
    2|     12|int f() {{
    3|      0|  return 1;
    4|  1.20k|}}
    5|      0|
{ROOT}/harness/exec/executor.cc:
    7|      0|  never();
{ROOT}/vm/pmap/pmap.cc:
   10|      0|  pmap_never();
   11|      3|  pmap_often();
"""


class UnreachedLinesTest(unittest.TestCase):
    def test_lists_only_zero_count_lines_of_vm_files(self):
        with mock.patch.object(coverage.subprocess, "run", return_value=completed(SHOW)):
            got = coverage.unreached_lines(["bin"], Path("x.profdata"))
        self.assertEqual(got, {"vm/pmap/pmap.cc": [(10, "  pmap_never();")],
                               "vm/vm_object.cc": [(3, "  return 1;"), (5, "")]})

    def test_lines_without_code_and_counted_lines_are_not_unreached(self):
        with mock.patch.object(coverage.subprocess, "run", return_value=completed(SHOW)):
            got = coverage.unreached_lines(["bin"], Path("x.profdata"))
        reached = {n for lines in got.values() for n, _ in lines}
        self.assertNotIn(1, reached)  # no count: no code
        self.assertNotIn(4, reached)  # "1.20k"
        self.assertNotIn(7, reached)  # not a vm/ file


class LayerPathsTest(unittest.TestCase):
    """A header reached through a layer's symlink (build/P/layers/T/vm -> vm) is one file."""

    def test_a_line_one_path_ran_is_reached_and_the_file_counts_once(self):
        with tempfile.TemporaryDirectory() as tmp:
            link = Path(tmp) / "layers" / "vmfuzz_vm"
            link.mkdir(parents=True)
            (link / "vm").symlink_to(ROOT / "vm")
            show = (f"{link}/vm/vm_object.h:\n    3|      0|  a();\n    4|      0|  b();\n"
                    f"{ROOT}/vm/vm_object.h:\n    3|      5|  a();\n    4|      0|  b();\n")
            with mock.patch.object(coverage.subprocess, "run", return_value=completed(show)):
                got = coverage.unreached_lines(["bin"], Path("x.profdata"))
            self.assertEqual(got, {"vm/vm_object.h": [(4, "  b();")]})
            export = {"data": [{"files": [
                {"filename": f"{link}/vm/vm_object.h", "summary": {"lines": {"count": 4, "covered": 1}}},
                {"filename": f"{ROOT}/vm/vm_object.h", "summary": {"lines": {"count": 4, "covered": 3}}}]}]}
            with mock.patch.object(coverage.subprocess, "run", return_value=completed(json.dumps(export))):
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
