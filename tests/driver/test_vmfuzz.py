"""Tests of the driver ci/vmfuzz: argument parsing, option files, progress parsing, setup.

Run: python3 -m unittest discover -s tests/driver
"""
import importlib.machinery
import importlib.util
import io
import re
import sys
import tempfile
import unittest
from contextlib import redirect_stderr
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "ci"))
import vmfuzzlib as lib  # noqa: E402  (ci/vmfuzzlib.py: what the driver and its verbs share)

sys.path.pop(0)
_loader = importlib.machinery.SourceFileLoader("vmfuzz_driver", str(ROOT / "ci" / "vmfuzz"))
_spec = importlib.util.spec_from_loader("vmfuzz_driver", _loader)
vmfuzz = importlib.util.module_from_spec(_spec)
_loader.exec_module(vmfuzz)


class ParserTest(unittest.TestCase):
    def test_every_verb_parses(self):
        parser = vmfuzz.make_parser()
        positional = {"replay": ["x.trace"], "minimize": ["x"], "triage": ["d"], "regress": ["x.trace", "name"]}
        for verb in vmfuzz.VERBS:
            argv = [verb] + positional.get(verb, [])
            args = parser.parse_args(argv)
            self.assertIs(args.func, vmfuzz.VERBS[verb][0])

    def test_replay_on_linux_parses_and_defaults_to_the_vm(self):
        parser = vmfuzz.make_parser()
        self.assertEqual(parser.parse_args(["replay", "x.trace"]).on, "vm")
        self.assertEqual(parser.parse_args(["replay", "--on", "linux", "x.trace"]).on, "linux")
        with redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            parser.parse_args(["replay", "--on", "bsd", "x.trace"])

    def test_fuzz_defaults_are_the_readme_job(self):
        args = vmfuzz.make_parser().parse_args(["fuzz"])
        self.assertEqual((args.engine, args.time, args.jobs, args.target), ("libfuzzer", 60, 1, None))

    def test_unknown_verb_is_refused(self):
        with redirect_stderr(io.StringIO()), self.assertRaises(SystemExit) as cm:
            vmfuzz.make_parser().parse_args(["frobnicate"])
        self.assertEqual(cm.exception.code, 2)


class ModuleShapeTest(unittest.TestCase):
    """ci/ depends one way: the driver -> its verb modules -> ci/vmfuzzlib.py. A verb module
    that loaded the driver back, or a second place that runs cmake, would undo that."""

    def ci_sources(self):
        return [ROOT / "ci" / "vmfuzz"] + sorted((ROOT / "ci").glob("*.py"))

    def test_no_module_of_ci_loads_the_driver(self):
        for path in self.ci_sources():
            if path.name == "vmfuzz":
                continue
            text = path.read_text()
            self.assertNotIn("SourceFileLoader", text, f"{path.name} loads a script as a module")
            self.assertIsNone(re.search(r'"ci"\s*/\s*"vmfuzz"|ci/vmfuzz"', text), f"{path.name} names the driver's file")

    def test_cmake_runs_in_one_place(self):
        for path in self.ci_sources():
            if path.name == "vmfuzzlib.py":
                continue
            self.assertNotIn('"cmake"', path.read_text(), f"{path.name} runs cmake itself: use lib.ensure_built")

    def test_ensure_built_shows_a_failed_build_only_when_asked_to_keep_quiet(self):
        err = io.StringIO()
        with redirect_stderr(err):
            rc = lib.run([sys.executable, "-c", "print('compiler says no'); raise SystemExit(3)"],
                         check=False, show="failure")
        self.assertEqual(rc, 3)
        self.assertIn("compiler says no", err.getvalue())
        err = io.StringIO()
        with redirect_stderr(err):
            self.assertEqual(lib.run([sys.executable, "-c", "print('fine')"], show="failure"), 0)
        self.assertEqual(err.getvalue(), "")


class FuzzTargetsTest(unittest.TestCase):
    def test_vm_diff_is_the_default_when_present(self):
        targets = lib.fuzz_targets()
        self.assertTrue(targets, "fuzz/ has no target")
        if "vm_diff" in targets:
            self.assertEqual(targets[0], "vm_diff")

    def test_options_file_becomes_flags(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "fuzz" / "t").mkdir(parents=True)
            (root / "fuzz" / "t" / "t.options").write_text("[libfuzzer]\nmax_len = 4096\n# c\n[afl]\nx=1\n")
            (root / "fuzz" / "t" / "t.dict").write_text('"a"\n')
            with mock.patch.object(lib, "ROOT", root):
                flags = lib.libfuzzer_options("t")
        self.assertEqual(flags, ["-max_len=4096", f"-dict={root}/fuzz/t/t.dict"])


class ProgressTest(unittest.TestCase):
    def test_libfuzzer_status_line(self):
        line = "#4096\tpulse  cov: 812 ft: 2310 corp: 41/9831b lim: 4096 exec/s: 2048 rss: 61Mb"
        m = lib.ci_module("campaign").parse_status(line)
        self.assertEqual(m, {"execs": 4096, "cov": 812, "ft": 2310, "corpus": 41, "exec_s": 2048})

    def test_fork_mode_status_line(self):
        # libFuzzer -fork=N (ci/vmfuzz fuzz --jobs N) prints another format, with its time.
        line = "#252: cov: 12842 ft: 12842 corp: 73 exec/s 126 oom/timeout/crash: 0/0/0 time: 2s job: 1 dft_time: 0"
        m = lib.ci_module("campaign").parse_status(line)
        self.assertEqual(m, {"execs": 252, "cov": 12842, "ft": 12842, "corpus": 73, "exec_s": 126, "seconds": 2.0})

    def test_ctest_summary(self):
        m = vmfuzz.CTEST_SUMMARY.search("100% tests passed, 0 tests failed out of 57")
        self.assertEqual((m.group(2), m.group(3)), ("0", "57"))


class SetupTest(unittest.TestCase):
    def test_missing_package_without_root_prints_the_install_line(self):
        with mock.patch.object(lib, "missing_packages", return_value=["afl++", "graphviz"]), \
             mock.patch.object(lib.os, "geteuid", return_value=1000):
            err = io.StringIO()
            with redirect_stderr(err):
                rc = lib.ensure_setup()
        self.assertEqual(rc, 2)
        self.assertIn("apt-get install -y --no-install-recommends afl++ graphviz", err.getvalue())

    def test_probe_of_an_absent_file(self):
        self.assertFalse(lib.probe_ok("file", "/nonexistent/vmfuzz/header.h"))
        self.assertFalse(lib.probe_ok("bin", "vmfuzz-no-such-tool"))


if __name__ == "__main__":
    unittest.main()


class MinimizeHelpersTest(unittest.TestCase):
    def test_ddmin_finds_the_two_ops_that_matter(self):
        self.assertEqual(lib.ddmin(list(range(40)), lambda l: 3 in l and 31 in l), [3, 31])

    def test_schedule_to_drain_moves_the_bursts_that_are_not_needed(self):
        ops = ["hold m0", "read t0 0x40000 4", "reply m0 0 supply", "run 1", "write t0 0x40000 \"a\"",
               "reply m0 ~0 error", "run ~0", "read t0 0x41000 4", "quiesce", "check"]
        # The "bug" needs `run ~0` before the second read; the first burst may go.
        keeps = lambda l: l.index("run ~0") < l.index("read t0 0x41000 4")
        out = lib.schedule_to_drain(ops, keeps)
        self.assertEqual(out, ["hold m0", "read t0 0x40000 4", "write t0 0x40000 \"a\"", "reply m0 ~0 error",
                               "run ~0", "read t0 0x41000 4", "check", "reply m0 0 supply", "run 1", "quiesce"])
        # Nothing needed: every burst goes to the end, in their order; `reply ... error` is the program's.
        self.assertEqual(lib.schedule_to_drain(ops, lambda l: True),
                         ["hold m0", "read t0 0x40000 4", "write t0 0x40000 \"a\"", "reply m0 ~0 error",
                          "read t0 0x41000 4", "check", "reply m0 0 supply", "run 1", "run ~0", "quiesce"])

    def test_replay_passes_the_explorer_flags_on(self):
        args = vmfuzz.make_parser().parse_args(["replay", "--schedules", "1000", "--depth", "2", "x.trace"])
        self.assertEqual((args.schedules, args.depth, args.seed, args.preemptions), (1000, 2, None, None))
        args = vmfuzz.make_parser().parse_args(["replay", "--preemptions", "3", "x.trace"])
        self.assertEqual((args.schedules, args.preemptions, args.max_schedules), (None, 3, None))

    def test_trace_split_keeps_header_and_drops_comments(self):
        header, ops = lib.trace_ops("# what if?\nconfig frames=64\n\nallocate t0 0x10000 0x1000\n# x\ncheck\n")
        self.assertEqual(header, ["# what if?", "config frames=64", ""])
        self.assertEqual(ops, ["allocate t0 0x10000 0x1000", "check"])

    def test_renumber_names_in_order_of_use(self):
        self.assertEqual(lib.renumber_names(["task t3", "fork t3 t5", "vm_read t5 0x10000 0x1000 c7"]),
                         ["task t1", "fork t1 t2", "vm_read t2 0x10000 0x1000 c0"])

    def test_shrink_line_args_keeps_only_what_holds(self):
        # The "bug" needs a size of at least 0x3000: the shrinker must stop there.
        keeps = lambda line: int(line.split()[3], 0) >= 0x3000
        self.assertEqual(lib.shrink_line_args("allocate t0 0x10000 0x8000", keeps).split()[3], "0x4000")

    def test_signature_drops_positions_and_addresses(self):
        out = "==1==ERROR: AddressSanitizer: x\nSUMMARY: AddressSanitizer: heap-use-after-free /s/vm/a.cc:12:3 in f(0x12)\n"
        self.assertEqual(lib.crash_signature(out), "AddressSanitizer: heap-use-after-free in f(ADDR)")
        self.assertEqual(lib.crash_signature("ERROR: vmfuzz divergence: content_mismatch in write\n"),
                         "vmfuzz divergence: content_mismatch in write")

    def test_unused_path_never_overwrites(self):
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "a.min.trace"
            p.write_text("x")
            q = lib.unused_path(p)
            self.assertNotEqual(p, q)
            self.assertFalse(q.exists())


class BuildFactsTest(unittest.TestCase):
    def test_the_driver_reads_what_the_build_says(self):
        # ops.def's rows: keyword and format column; the build's facts must be exactly these.
        rows = re.findall(r'^VMFUZZ_OP\(\s*\w+\s*,\s*"(\w+)"\s*,\s*(\d+)\s*,\s*(\d+)',
                          (ROOT / "vocab" / "vmfuzz" / "ops.def").read_text(), re.M)
        self.assertGreater(len(rows), 20)
        facts = lib.build_facts()
        self.assertEqual(facts["ops"], [name for name, _, _ in rows])
        self.assertEqual(lib.format_version(), max(int(fmt) for _, _, fmt in rows))
        self.assertEqual(lib.known_formats(), tuple(range(1, lib.format_version() + 1)))
        self.assertGreater(lib.full_check_every(), 0)


class StampTest(unittest.TestCase):
    def test_stamp_round_trip_and_mismatch_warnings(self):
        with tempfile.TemporaryDirectory() as tmp:
            crash = Path(tmp) / "crash-1"
            crash.write_bytes(bytes([lib.format_version(), 0, 1, 2]))
            with mock.patch.object(vmfuzz, "git_commit", return_value="abc"), \
                 mock.patch.dict(lib.os.environ, {"VMFUZZ_BUG": "missed_push"}):
                st = vmfuzz.stamp(crash, "vm_diff", "fuzz", "libfuzzer")
                self.assertEqual(vmfuzz.stamp_warnings(crash), [])
            self.assertTrue(st.name.endswith(".stamp.json"))
            with mock.patch.object(vmfuzz, "git_commit", return_value="def"), \
                 mock.patch.dict(lib.os.environ, {"VMFUZZ_BUG": ""}):
                warnings = vmfuzz.stamp_warnings(crash)
            self.assertEqual(len(warnings), 2)
            self.assertIn("found at commit abc", warnings[0])
            self.assertIn("VMFUZZ_BUG=missed_push", warnings[1])

    def test_wrong_format_byte_is_reported(self):
        with tempfile.TemporaryDirectory() as tmp:
            crash = Path(tmp) / "crash-2"
            crash.write_bytes(bytes([7, 1, 2]))
            self.assertIn("format version byte 7", vmfuzz.stamp_warnings(crash)[0])
            crash.write_bytes(bytes([2, 1, 2]))  # format 2: known
            self.assertEqual(vmfuzz.stamp_warnings(crash), [])

    def test_format1_file_starting_with_2_is_reported(self):
        import json
        with tempfile.TemporaryDirectory() as tmp:
            crash = Path(tmp) / "crash-3"
            crash.write_bytes(bytes([2, 0, 0]))
            stamp = {"file": crash.name, "format_version": 1, "commit": "abc", "bugs": ""}
            crash.with_name(crash.name + ".stamp.json").write_text(json.dumps(stamp))
            with mock.patch.object(vmfuzz, "git_commit", return_value="abc"):
                warnings = vmfuzz.stamp_warnings(crash)
            self.assertEqual(len(warnings), 1)
            self.assertIn("now means format 2", warnings[0])
            crash.write_bytes(bytes([1, 0, 0]))  # the fix the warning suggests
            with mock.patch.object(vmfuzz, "git_commit", return_value="abc"):
                self.assertEqual(vmfuzz.stamp_warnings(crash), [])
