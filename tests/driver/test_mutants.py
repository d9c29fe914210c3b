"""Tests of ci/mutants.py's pure parts: the catalogue parser, median, cell summaries, the
JSON document (docs/ARCHITECTURE.md, "Contracts scripts rely on"), the kill matrix and the report; and the verb's arguments.

Run: python3 -m unittest discover -s tests/driver
"""
import importlib.machinery
import importlib.util
import json
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "ci"))
import mutants  # noqa: E402  (ci/mutants.py)

sys.path.pop(0)
_loader = importlib.machinery.SourceFileLoader("vmfuzz_driver_t", str(ROOT / "ci" / "vmfuzz"))
_spec = importlib.util.spec_from_loader("vmfuzz_driver_t", _loader)
vmfuzz = importlib.util.module_from_spec(_spec)
_loader.exec_module(vmfuzz)

Trial, Cell = mutants.Trial, mutants.Cell


def cell(name, engine, *trials, ops=None, sig=None):
    return Cell(name, engine, list(trials), trace_ops=ops, signature=sig)


class CatalogueTest(unittest.TestCase):
    def test_parses_names_and_descriptions_in_order(self):
        text = ('// comment VMFUZZ_BUG(Not, "a", "b") is not at a line start\n'
                'VMFUZZ_BUG(MissedPush,  "missed_push", "a write does not push")\n'
                'VMFUZZ_BUG(Other, "other_bug", "says \\"quoted\\" things")\n')
        self.assertEqual(mutants.parse_catalogue(text),
                         [("missed_push", "a write does not push"), ("other_bug", 'says \\"quoted\\" things')])

    def test_the_real_catalogue_has_every_bug_documented(self):
        bugs = mutants.parse_catalogue((ROOT / "vm" / "machine" / "bugs.def").read_text())
        self.assertGreaterEqual(len(bugs), 25)
        self.assertEqual(len({n for n, _ in bugs}), len(bugs), "names are unique")
        doc = (ROOT / "docs" / "bugs.md").read_text()
        for name, _ in bugs:
            self.assertIn(f"\n## `{name}`\n", doc)


class MedianTest(unittest.TestCase):
    def test_odd_even_empty(self):
        self.assertEqual(mutants.median([3.0, 1.0, 2.0]), 2.0)
        self.assertEqual(mutants.median([4.0, 1.0, 3.0, 2.0]), 2.5)
        self.assertEqual(mutants.median([7.5]), 7.5)
        self.assertIsNone(mutants.median([]))


class CellTest(unittest.TestCase):
    def test_median_over_the_trials_that_caught(self):
        c = cell("b", "libfuzzer", Trial(True, 1.0), Trial(False), Trial(True, 3.0), Trial(True, 10.0))
        self.assertTrue(c.caught)
        self.assertEqual(c.caught_trials, 3)
        self.assertEqual(c.seconds, 3.0)

    def test_missed_everywhere(self):
        c = cell("b", "afl", Trial(False), Trial(False))
        self.assertFalse(c.caught)
        self.assertIsNone(c.seconds)


class JsonTest(unittest.TestCase):
    def test_shape_of_design_section_7(self):
        cells = [cell("missed_push", "libfuzzer", Trial(True, 0.25), ops=4, sig="vmfuzz: x in read"),
                 cell("missed_push", "rapidcheck", Trial(False))]
        doc = json.loads(mutants.to_json(cells))
        self.assertEqual(list(doc), ["mutants"])
        self.assertEqual(len(doc["mutants"]), 2)
        for obj in doc["mutants"]:
            for key in ("name", "engine", "caught", "seconds", "trace_ops"):
                self.assertIn(key, obj)
        first, second = doc["mutants"]
        self.assertEqual((first["name"], first["engine"], first["caught"], first["seconds"], first["trace_ops"]),
                         ("missed_push", "libfuzzer", True, 0.25, 4))
        self.assertEqual(first["signature"], "vmfuzz: x in read")
        self.assertEqual((second["caught"], second["seconds"], second["trace_ops"]), (False, None, None))
        self.assertIsInstance(first["caught"], bool)

    def test_minimized_trace_is_kept(self):
        c = cell("missed_push", "libfuzzer", Trial(True, 0.25), ops=2, sig="vmfuzz: x in read")
        c.minimized = "config\nfork t0 t1\n"
        obj = json.loads(mutants.to_json([c, cell("b", "afl", Trial(False))]))["mutants"]
        self.assertEqual((obj[0]["minimized"], obj[1]["minimized"]), ("config\nfork t0 t1\n", None))


class MatrixTest(unittest.TestCase):
    def setUp(self):
        self.cells = [
            cell("a_bug", "libfuzzer", Trial(True, 0.5), Trial(True, 1.5), ops=7, sig="s|1"),
            cell("a_bug", "rapidcheck", Trial(True, 2.0), ops=3, sig="s2"),
            cell("b_bug", "libfuzzer", Trial(False), Trial(False)),
            cell("b_bug", "rapidcheck", Trial(True, 9.0), ops=12),
        ]

    def test_rows_columns_and_cells(self):
        text = mutants.format_matrix(self.cells, ["a_bug", "b_bug"], ["libfuzzer", "rapidcheck"])
        lines = text.splitlines()
        self.assertEqual(len(lines), 4)
        self.assertEqual(lines[0], "| bug | libFuzzer (seeds) | rapidcheck | min trace ops | signature |")
        self.assertEqual(lines[1].count("---"), 5)
        self.assertEqual(lines[2], "| `a_bug` | yes 2/2, 1.0 s | yes 1/1, 2.0 s | 3 | s\\|1 |")
        self.assertEqual(lines[3], "| `b_bug` | no (0/2) | yes 1/1, 9.0 s | 12 | - |")

    def test_missing_cell_is_a_dash(self):
        text = mutants.format_matrix(self.cells[:1], ["a_bug"], ["libfuzzer", "afl"])
        self.assertIn("| yes 2/2, 1.0 s | - |", text)

    def test_summary_counts(self):
        s = mutants.engine_summary(self.cells, "rapidcheck")
        self.assertEqual((s["bugs"], s["caught"], s["under_5s"], s["trace_ops_le_10"]), (2, 2, 1, 1))
        self.assertEqual(s["median_seconds"], 5.5)
        text = mutants.format_summary(self.cells, ["libfuzzer", "rapidcheck"])
        self.assertIn("libFuzzer (seeds): caught 1/2 (50%)", text)
        self.assertIn("caught by no engine: none", text)
        missed = mutants.format_summary([cell("z", "afl", Trial(False))], ["afl"])
        self.assertIn("caught by no engine: z", missed)

    def test_report_holds_the_matrix_and_the_shortest_trace(self):
        self.cells[0].minimized = "config\nfork t0 t1\n"
        self.cells[1].minimized = "config\nallocate t0 0x10000 0x1000\n"
        report = mutants.format_report(self.cells, ["a_bug", "b_bug"], ["libfuzzer", "rapidcheck"], "settings")
        self.assertIn("Run: `settings`", report)
        self.assertIn(mutants.format_matrix(self.cells, ["a_bug", "b_bug"], ["libfuzzer", "rapidcheck"]), report)
        self.assertIn("### `a_bug` (rapidcheck, 3 ops)", report)
        self.assertIn("allocate t0 0x10000 0x1000", report)
        self.assertNotIn("fork t0 t1", report)


class VerbTest(unittest.TestCase):
    def test_arguments(self):
        args = vmfuzz.make_parser().parse_args(["mutants"])
        self.assertIs(args.func, vmfuzz.verb_mutants)
        self.assertEqual((args.engine, args.time, args.trials, args.json, args.bug), ("all", 60, 3, False, None))
        args = vmfuzz.make_parser().parse_args(
            ["mutants", "--engine", "rapidcheck", "--time", "5", "--trials", "1", "--json", "--bug", "a", "b"])
        self.assertEqual((args.engine, args.time, args.trials, args.json, args.bug), ("rapidcheck", 5, 1, True, ["a", "b"]))
        args = vmfuzz.make_parser().parse_args(["mutants", "--engine", "libfuzzer_empty"])
        self.assertEqual(args.engine, "libfuzzer_empty")
        args = vmfuzz.make_parser().parse_args(["mutants", "--engine", "afl_empty"])
        self.assertEqual(args.engine, "afl_empty")
        self.assertIn("afl_empty", mutants.ENGINE_TITLES)

    def test_unknown_bug_is_refused(self):
        args = vmfuzz.make_parser().parse_args(["mutants", "--bug", "no_such_bug", "--no-build"])
        import io
        from contextlib import redirect_stderr
        with redirect_stderr(io.StringIO()) as err:
            self.assertEqual(mutants.main(ROOT, args), 2)
        self.assertIn("no_such_bug", err.getvalue())


if __name__ == "__main__":
    unittest.main()
