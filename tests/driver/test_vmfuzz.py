"""Tests of the driver ci/vmfuzz: argument parsing, option files, progress parsing, setup.

Run: python3 -m unittest discover -s tests/driver
"""
import importlib.machinery
import importlib.util
import io
import tempfile
import unittest
from contextlib import redirect_stderr
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
_loader = importlib.machinery.SourceFileLoader("vmfuzz_driver", str(ROOT / "ci" / "vmfuzz"))
_spec = importlib.util.spec_from_loader("vmfuzz_driver", _loader)
vmfuzz = importlib.util.module_from_spec(_spec)
_loader.exec_module(vmfuzz)


class ParserTest(unittest.TestCase):
    def test_every_verb_parses(self):
        parser = vmfuzz.make_parser()
        for verb in vmfuzz.VERBS:
            argv = [verb] + (["x.trace"] if verb == "replay" else [])
            args = parser.parse_args(argv)
            self.assertIs(args.func, vmfuzz.VERBS[verb][0])

    def test_fuzz_defaults_are_the_readme_job(self):
        args = vmfuzz.make_parser().parse_args(["fuzz"])
        self.assertEqual((args.engine, args.time, args.jobs, args.target), ("libfuzzer", 60, 1, None))

    def test_unknown_verb_is_refused(self):
        with redirect_stderr(io.StringIO()), self.assertRaises(SystemExit) as cm:
            vmfuzz.make_parser().parse_args(["frobnicate"])
        self.assertEqual(cm.exception.code, 2)


class FuzzTargetsTest(unittest.TestCase):
    def test_vm_diff_is_the_default_when_present(self):
        targets = vmfuzz.fuzz_targets()
        self.assertTrue(targets, "fuzz/ has no target")
        if "vm_diff" in targets:
            self.assertEqual(targets[0], "vm_diff")

    def test_options_file_becomes_flags(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "fuzz" / "t").mkdir(parents=True)
            (root / "fuzz" / "t" / "t.options").write_text("[libfuzzer]\nmax_len = 4096\n# c\n[afl]\nx=1\n")
            (root / "fuzz" / "t" / "t.dict").write_text('"a"\n')
            with mock.patch.object(vmfuzz, "ROOT", root):
                flags = vmfuzz.libfuzzer_options("t")
        self.assertEqual(flags, ["-max_len=4096", f"-dict={root}/fuzz/t/t.dict"])


class ProgressTest(unittest.TestCase):
    def test_libfuzzer_status_line(self):
        line = "#4096\tpulse  cov: 812 ft: 2310 corp: 41/9831b lim: 4096 exec/s: 2048 rss: 61Mb"
        m = vmfuzz.PROGRESS.search(line)
        self.assertIsNotNone(m)
        self.assertEqual((m.group(1), m.group(3), m.group(4), m.group(5), m.group(6)),
                         ("4096", "812", "2310", "41", "2048"))

    def test_ctest_summary(self):
        m = vmfuzz.CTEST_SUMMARY.search("100% tests passed, 0 tests failed out of 57")
        self.assertEqual((m.group(2), m.group(3)), ("0", "57"))


class SetupTest(unittest.TestCase):
    def test_missing_package_without_root_prints_the_install_line(self):
        with mock.patch.object(vmfuzz, "missing_packages", return_value=["afl++", "graphviz"]), \
             mock.patch.object(vmfuzz.os, "geteuid", return_value=1000):
            err = io.StringIO()
            with redirect_stderr(err):
                rc = vmfuzz.ensure_setup()
        self.assertEqual(rc, 2)
        self.assertIn("apt-get install -y --no-install-recommends afl++ graphviz", err.getvalue())

    def test_probe_of_an_absent_file(self):
        self.assertFalse(vmfuzz.probe_ok("file", "/nonexistent/vmfuzz/header.h"))
        self.assertFalse(vmfuzz.probe_ok("bin", "vmfuzz-no-such-tool"))


if __name__ == "__main__":
    unittest.main()
