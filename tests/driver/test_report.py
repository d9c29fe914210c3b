"""Tests of what `ci/vmfuzz report` and `mutants --baseline` read and compute: campaign
timelines (whole, cut off, garbled), bare libFuzzer logs, object graphs, findings, A12,
scipy's U test through ci/stats.py, progress lines, and the ClusterFuzzLite workflow check.

Run: python3 -m unittest discover -s tests/driver
The parts that need Debian's python3-scipy / python3-yaml run under DEBIAN_PYTHON
(/usr/bin/python3) as the driver runs them; when it lacks them the test fails and says
to run `ci/vmfuzz setup` (it never skips).
"""
import importlib.machinery
import importlib.util
import io
import json
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stderr
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "ci"))
import campaign  # noqa: E402
import progress  # noqa: E402
import stats  # noqa: E402  (imports scipy only inside compare())
import vmfuzzlib as lib  # noqa: E402

sys.path.pop(0)
_loader = importlib.machinery.SourceFileLoader("vmfuzz_driver_r", str(ROOT / "ci" / "vmfuzz"))
_spec = importlib.util.spec_from_loader("vmfuzz_driver_r", _loader)
vmfuzz = importlib.util.module_from_spec(_spec)
_loader.exec_module(vmfuzz)

HEAD = ("# vmfuzz campaign timeline v1\n# target vm_diff\n# jobs 1\n# started 2026-01-01T00:00:00Z\n# bug \n"
        "seconds\texecs\texec_s\tcov\tft\tcorpus\tvm_states\tcrashes\n")
ROW = "{s}\t{e}\t100\t{c}\t900\t80\t-\t0\n"


def debian_python(*modules):
    try:
        return lib.debian_python(*modules)
    except lib.MissingTool as e:
        raise AssertionError(f"{e} — run ci/vmfuzz setup") from None


class TimelineTest(unittest.TestCase):
    def test_writer_output_reads_back_finished(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "c" / "t.tsv"
            w = campaign.TimelineWriter(path, {"target": "vm_diff", "jobs": 2})
            w.row({"seconds": "1.5", "execs": 10, "exec_s": 7, "cov": 5, "ft": 6, "corpus": 3, "vm_states": "-",
                   "crashes": 0})
            w.close(status="ok", seconds="2.0")
            c = campaign.read_timeline(path.read_text())
            with self.assertRaises(FileExistsError):  # never over an existing campaign
                campaign.TimelineWriter(path, {})
        self.assertTrue(c.finished)
        self.assertEqual(c.end, {"status": "ok", "seconds": "2.0"})
        self.assertEqual(c.header["jobs"], "2")
        self.assertEqual(c.rows, [{"seconds": 1.5, "execs": 10, "exec_s": 7, "cov": 5, "ft": 6, "corpus": 3,
                                   "vm_states": None, "crashes": 0}])
        self.assertIn("2 jobs", c.label)

    def test_cut_off_in_the_middle_of_a_row(self):
        text = HEAD + ROW.format(s=1.0, e=100, c=10) + ROW.format(s=2.0, e=200, c=12) + "3.0\t300\t1"
        c = campaign.read_timeline(text)
        self.assertFalse(c.finished)
        self.assertEqual([r["cov"] for r in c.rows], [10, 12])
        self.assertEqual(c.skipped, 1)
        self.assertIn("cut off after 2s", c.state)

    def test_ctrl_c_is_its_own_state(self):
        c = campaign.read_timeline(HEAD + ROW.format(s=1.0, e=100, c=10) + "# ended status=interrupted seconds=8.9\n")
        self.assertEqual(c.state, "stopped by Ctrl-C after 9s")

    def test_garbled_lines_are_skipped_not_fatal(self):
        text = HEAD + "not\ta\trow\n" + ROW.format(s=1.0, e=100, c=10) + "x\ty\tz\t1\t2\t3\t4\t5\n"
        c = campaign.read_timeline(text)
        self.assertEqual(len(c.rows), 1)
        self.assertEqual(c.skipped, 2)

    def test_only_the_header_is_an_empty_campaign(self):
        c = campaign.read_timeline(HEAD[:40])  # cut inside the header
        self.assertEqual(c.rows, [])
        self.assertFalse(c.finished)

    def test_bare_log_estimates_seconds(self):
        log = ("INFO: Seed: 1\n#114\tINITED cov: 3550 ft: 12857 corp: 73/7615b exec/s: 0 rss: 82Mb\n"
               "VMSTATE: 150 features\n"
               "#4096\tpulse  cov: 3600 ft: 13000 corp: 90/9k lim: 1024 exec/s: 2048 rss: 90Mb\n"
               "#8192\tNEW    cov: 3610 ft: 13100 corp: 95/9k lim: 1024 exec/s: 1024 rss: 90Mb L: 1/2\n")
        c = campaign.read_fuzz_log(log)
        self.assertTrue(c.estimated)
        self.assertFalse(c.finished)  # no "Done" line: Ctrl-C
        self.assertEqual([r["seconds"] for r in c.rows], [0.0, 2.0, 8.0])
        self.assertEqual([r["vm_states"] for r in c.rows], [None, 150, 150])

    def test_afl_plot_data_by_column_names(self):
        text = ("# relative_time, cycles_done, cur_item, corpus_count, pending_total, pending_favs, map_size, "
                "saved_crashes, saved_hangs, max_depth, execs_per_sec, total_execs, edges_found\n"
                "5, 0, 3, 80, 10, 2, 4.50%, 0, 0, 2, 812.30, 4061, 1200\n"
                "10, 0, 9, 95, 8, 1, 4.90%, 1, 0, 3, 790.00, 7900, 1290\n"
                "15, 1, 2, 9")  # cut off
        c = campaign.read_afl_plot_data(text, header={"target": "vm_diff"})
        self.assertEqual([(r["seconds"], r["execs"], r["cov"], r["corpus"], r["crashes"]) for r in c.rows],
                         [(5.0, 4061, 1200, 80, 0), (10.0, 7900, 1290, 95, 1)])
        self.assertEqual((c.skipped, c.header["engine"], c.rows[0]["ft"]), (1, "afl", None))

    def test_load_campaigns_reads_timelines_and_an_uncovered_log(self):
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp) / "fuzz" / "mmu"
            (t / "campaigns").mkdir(parents=True)
            (t / "campaigns" / "a.tsv").write_text(HEAD + ROW.format(s=1.0, e=1, c=1))
            self.assertEqual(len(campaign.load_campaigns(Path(tmp))), 1)
            (t / "fuzz.log").write_text("#2\tINITED cov: 1 ft: 1 corp: 1/1b exec/s: 1 rss: 1Mb\n")
            import os
            os.utime(t / "campaigns" / "a.tsv", (1, 1))  # the log is newer: a campaign of its own
            cs = campaign.load_campaigns(Path(tmp))
        self.assertEqual([c.estimated for c in cs], [False, True])
        self.assertEqual(cs[0].header["target"], "vm_diff")


DOT = r'''digraph vm {
  subgraph cluster_t0 {
    "t0_0x10000" [shape=box, label="0x10000-0x12000\nrw-/rwx share shared"];
  }
  "o1" [shape=ellipse, label="object 1\nref 3, resident 0, size 0x2000\ndelay internal temporary use_shared_copy pager_created"];
  "o2" [shape=ellipse, label="object 2\nref 1, resident 1, size 0x2000\ndelay internal temporary shadowed", penwidth=3];
  "o3" [shape=ellipse, label="object 3\nref 1, resident 1, size 0x1000\nnone persist", style=filled, fillcolor="#ff8080"];
  "o4" [shape=ellipse, label="object 4\nref 1, resident 0, size 0x1000\ndelay internal temporary"];
  "o1" -> "o2" [style=dashed, label="copy"];
  "o2" -> "o1" [label="shadow +0x0"];
  "o4" -> "o2" [label="shadow +0x1000", penwidth=3];
  "m0" [shape=note, label="m0"];
}
'''


class DotTest(unittest.TestCase):
    def test_objects_edges_and_shape(self):
        g = campaign.parse_dot(DOT)
        self.assertEqual(sorted(g["objects"]), [1, 2, 3, 4])
        self.assertEqual(g["shadow"], {2: 1, 4: 2})
        self.assertEqual(g["copy"], {1: 2})
        self.assertEqual(g["objects"][3]["flags"], ["none", "persist"])
        s = campaign.vm_shape(g)
        self.assertEqual(sorted(s["chain_depths"]), [1, 1, 2, 3])
        self.assertEqual(sorted(s["sharers"]), [1, 1, 1, 3])
        self.assertEqual((s["copy_objects"], s["internal_pagers"], s["external_objects"]), (1, 1, 1))

    def test_a_cycle_does_not_hang(self):
        g = campaign.parse_dot(DOT + '"o1" -> "o4" [label="shadow +0x0"];\n'.replace("\n", "") + "\n")
        g["shadow"][1] = 4
        self.assertEqual(max(campaign.vm_shape(g)["chain_depths"]), 3)


class FindingsTest(unittest.TestCase):
    def test_one_per_signature_smallest_trace(self):
        with tempfile.TemporaryDirectory() as tmp:
            c = Path(tmp) / "fuzz" / "vm_diff" / "crashes"
            c.mkdir(parents=True)
            for name, sig, ops in (("crash-a", "sig one", 5), ("crash-b", "sig one", 2), ("crash-c", "sig two", 3)):
                (c / name).write_bytes(b"\x02")
                (c / f"{name}.min.trace").write_text(f"# minimized from {name}: {sig}\n" + "check\n" * ops)
            (c / "crash-a.stamp.json").write_text(json.dumps({"bugs": "missed_push"}))
            (c / "crash-d").write_bytes(b"\x01")  # not minimized (a sanitizer finding, say)
            fs = campaign.load_findings(Path(tmp))
        self.assertEqual([(f.signature, f.count) for f in fs][:2], [("sig one", 2), (None, 1)])
        one = fs[0]
        self.assertEqual(one.minimized.name, "crash-b.min.trace")
        self.assertEqual(len(fs), 3)


class StatisticsTest(unittest.TestCase):
    def test_a12_and_medians(self):
        self.assertEqual(campaign.a12_faster([1, 2], [3, 4]), 1.0)
        self.assertEqual(campaign.a12_faster([3, 4], [1, 2]), 0.0)
        self.assertEqual(campaign.a12_faster([1, None], [1, None]), 0.5)
        # a miss is slower than any kill: (None vs 5) loses, (1 vs 5) wins
        self.assertEqual(campaign.a12_faster([1, None], [5]), 0.5)
        self.assertEqual(campaign.median_time([3.0, None, 1.0]), 3.0)
        self.assertIsNone(campaign.median_time([3.0, None, None]))
        self.assertEqual(campaign.verdict(0.9, 0.01), "better")
        self.assertEqual(campaign.verdict(0.1, 0.01), "worse")
        self.assertEqual(campaign.verdict(0.9, 0.2), "no evidence")

    def test_smallest_p_of_the_exact_test(self):
        self.assertAlmostEqual(stats.smallest_p(3, 3), 0.1)
        self.assertLess(stats.smallest_p(4, 4), 0.05)

    def doc(self, times):
        return {"mutants": [{"name": "b", "engine": "libfuzzer", "trial_seconds": times}]}

    def run_stats(self, old, new):
        with tempfile.TemporaryDirectory() as tmp:
            o, n = Path(tmp) / "old.json", Path(tmp) / "new.json"
            o.write_text(json.dumps(old))
            n.write_text(json.dumps(new))
            return subprocess.run([debian_python("scipy"), str(ROOT / "ci" / "stats.py"), str(o), str(n)],
                                  capture_output=True, text=True)

    def test_scipy_u_test_through_stats_py(self):
        proc = self.run_stats(self.doc([6, 7, 8, 9, 10]), self.doc([1, 2, 3, 4, 5]))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        (row,) = json.loads(proc.stdout)
        self.assertAlmostEqual(row["p"], 0.0079365, places=5)  # exact two-sided, 5 vs 5, no overlap
        self.assertEqual((row["a12"], row["verdict"], row["median_new"], row["median_baseline"]),
                         (1.0, "better", 3.0, 8.0))
        self.assertNotIn("note", row)
        self.assertIn("A12 1.00, p 0.00794: better", stats.format_row(row))

    def test_misses_rank_last_and_small_samples_say_so(self):
        proc = self.run_stats(self.doc([None, None, None]), self.doc([0.5, 0.7, None]))
        (row,) = json.loads(proc.stdout)
        self.assertEqual((row["killed_new"], row["killed_baseline"], row["verdict"]), (2, 0, "no evidence"))
        self.assertGreater(row["a12"], 0.5)
        self.assertIn("cannot reach p < 0.05", row["note"])
        self.assertIn("not killed (0/3)", stats.format_row(row))

    def test_a_baseline_without_trial_times_is_refused_by_name(self):
        proc = self.run_stats({"mutants": [{"name": "b", "engine": "libfuzzer", "seconds": 1}]}, self.doc([1]))
        self.assertEqual(proc.returncode, 2)
        self.assertIn("old.json", proc.stderr)
        self.assertIn("trial_seconds", proc.stderr)

    def test_mutants_refuses_a_bad_baseline_before_running(self):
        sys.path.insert(0, str(ROOT / "ci"))
        import mutants
        sys.path.pop(0)
        with tempfile.TemporaryDirectory() as tmp:
            bad = Path(tmp) / "b.json"
            bad.write_text("{\n  \"mutants\": [\n    oops\n")
            args = vmfuzz.make_parser().parse_args(["mutants", "--bug", "missed_push", "--no-build",
                                                    "--baseline", str(bad)])
            with redirect_stderr(io.StringIO()) as err:
                self.assertEqual(mutants.main(ROOT, args), 2)
        self.assertIn(f"{bad}:3: not JSON", err.getvalue())


class ProgressTest(unittest.TestCase):
    def clock(self):
        t = [0.0]
        return t, (lambda: t[0])

    def test_plain_lines_with_an_estimate(self):
        t, clock = self.clock()
        out = io.StringIO()
        p = progress.Progress(4, "mutants", stream=out, tty=False, clock=clock)
        p.step("a")
        t[0] = 10.0
        p.step("b")
        p.finish("done")
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0], "[mutants] 1/4 a — 0s so far, ~? left")
        self.assertEqual(lines[1], "[mutants] 2/4 b — 10s so far, ~30s left")
        self.assertEqual(lines[2], "[mutants] done (10s)")

    def test_terminal_line_is_rewritten_in_place(self):
        t, clock = self.clock()
        out = io.StringIO()
        p = progress.Progress(2, "coverage", stream=out, tty=True, clock=clock)
        p.step("a long first step")
        p.step("b")
        p.finish()
        text = out.getvalue()
        self.assertEqual(text.count("\n"), 1)
        self.assertEqual(text.count("\r"), 2)
        self.assertTrue(text.endswith("\n"))

    def test_weights_shape_the_estimate(self):
        t, clock = self.clock()
        p = progress.Progress(2, "x", total_weight=100, stream=io.StringIO(), tty=False, clock=clock)
        p.step("small", 10)
        t[0] = 5.0
        p.step("big", 90)
        self.assertAlmostEqual(p.eta(), 45.0)
        self.assertEqual(progress.format_seconds(185), "3m05s")


class VerbTest(unittest.TestCase):
    def test_report_and_replay_arguments(self):
        parser = vmfuzz.make_parser()
        args = parser.parse_args(["report"])
        self.assertEqual((args.func, args.dir, args.out), (vmfuzz.verb_report, None, None))
        args = parser.parse_args(["replay", "--svg", "g.svg", "--png", "g.png", "x.trace"])
        self.assertEqual((args.svg, args.png, args.dot), ("g.svg", "g.png", None))
        args = parser.parse_args(["mutants", "--baseline", "old.json"])
        self.assertEqual(args.baseline, "old.json")

    def test_report_of_an_empty_folder_says_what_to_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([sys.executable, str(ROOT / "ci" / "vmfuzz"), "report", tmp],
                                  capture_output=True, text=True)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("run `ci/vmfuzz fuzz` first", proc.stderr)

    def test_render_dot_reports_a_missing_graph(self):
        self.assertIn("no object graph", vmfuzz.render_dot(Path("/nonexistent/g.dot"), Path("g.svg"), "svg"))

    def test_render_dot_draws_svg(self):
        with tempfile.TemporaryDirectory() as tmp:
            dot, svg = Path(tmp) / "g.dot", Path(tmp) / "g.svg"
            dot.write_text(DOT)
            self.assertIsNone(vmfuzz.render_dot(dot, svg, "svg"))
            self.assertIn("<svg", svg.read_text())


class SetupTest(unittest.TestCase):
    def test_only_report_verbs_ask_for_the_python_packages(self):
        from unittest import mock
        py_missing = lambda kind, what: kind != "py" and what != "chromium"  # noqa: E731
        with mock.patch.object(lib, "probe_ok", side_effect=py_missing), \
             mock.patch.object(lib.os, "geteuid", return_value=1000):
            self.assertEqual(lib.ensure_setup(), 0)  # replay, fuzz, ... need none of them
            err = io.StringIO()
            with redirect_stderr(err):
                self.assertEqual(lib.ensure_setup(report=True), 2)
        self.assertIn("python3-matplotlib python3-scipy python3-yaml", err.getvalue())


class ReportCheckTest(unittest.TestCase):
    """The browser test's structural half must fail on a broken page (it is what runs alone
    where Chromium is missing)."""

    def test_broken_page_is_refused(self):
        loader = importlib.machinery.SourceFileLoader("check_report_t", str(ROOT / "tests" / "report" / "check_report.py"))
        spec = importlib.util.spec_from_loader(loader.name, loader)
        check = importlib.util.module_from_spec(spec)
        loader.exec_module(check)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            (out / "tiny.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>')
            (out / "index.html").write_text(
                "<h2 id='campaigns'></h2><img src='missing.svg'><img src='tiny.svg'>"
                "<img src='https://example.com/x.svg'><a href='#findings'>x</a>")
            errors = []
            check.structural(out, errors)
        text = "\n".join(errors)
        for want in ("section #findings missing", "missing.svg: missing", "external or absolute reference: https://",
                     "tiny.svg: missing or nearly empty", "no object graph of the finding", "not labelled as cut off"):
            self.assertIn(want, text)


class WorkflowsTest(unittest.TestCase):
    def test_workflows_parse_and_broken_variants_are_refused(self):
        proc = subprocess.run([debian_python("yaml"), str(ROOT / "tests" / "ossfuzz" / "check_workflows.py"),
                               str(ROOT)], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("0 problems", proc.stdout)
        self.assertIn("8/8 broken variants refused", proc.stdout)


if __name__ == "__main__":
    unittest.main()
