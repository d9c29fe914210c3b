"""stats — compare two kill matrices trial by trial (`ci/vmfuzz mutants --baseline OLD.json`).

Theory of operation
-------------------
Runs under Debian's /usr/bin/python3, which sees python3-scipy (`ci/vmfuzz setup` installs
it); the driver and ci/mutants.py stay standard library only and call this file as a
program:

    /usr/bin/python3 ci/stats.py OLD.json NEW.json     -> one JSON list on stdout

For every (bug, engine) present in both documents, with per-trial seconds to kill
("trial_seconds"; null where a trial did not kill):
  - the median time to kill of each side (a miss counts as slower than every kill, so a
    median that falls on a miss is "not killed");
  - Vargha-Delaney A12 = P(a new trial kills sooner than a baseline trial) + 0.5 P(tie),
    so A12 > 0.5 favours the new run (ci/campaign.py, `a12_faster`);
  - the two-sided Mann-Whitney U p-value, scipy.stats.mannwhitneyu, with a miss ranked
    after every kill (it is replaced by one value above every time seen: the U test uses
    ranks only, so this changes nothing but keeps scipy away from infinities);
  - a verdict: better / worse when p < 0.05 (A12 says which way), else no evidence.
With few trials the test cannot reach 0.05 whatever happens (3 against 3: the smallest
two-sided p is 0.1); the row then says so, rather than letting "no evidence" read as
"no difference".
Exit status 0; 2 with one line naming the file for unusable input or a missing scipy.
"""

from __future__ import annotations

import json
import sys
from math import comb
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import campaign  # noqa: E402  (ci/campaign.py, standard library)

ALPHA = 0.05


def smallest_p(n: int, m: int) -> float:
    """The smallest two-sided p the exact U test can give for samples of n and m."""
    return min(1.0, 2.0 / comb(n + m, n)) if n and m else 1.0


def compare(old: dict, new: dict, old_name: str = "OLD", new_name: str = "NEW") -> list[dict]:
    from scipy.stats import mannwhitneyu
    old_cells = {(c["name"], c["engine"]): c for c in old["mutants"]}
    rows = []
    for c in new["mutants"]:
        key = (c["name"], c["engine"])
        if key not in old_cells:
            continue
        xs = campaign.trial_times(c, new_name)
        ys = campaign.trial_times(old_cells[key], old_name)
        if not xs or not ys:
            continue
        seen = [t for t in xs + ys if t is not None]
        miss = (max(seen) if seen else 0.0) + 1.0
        x = [miss if t is None else t for t in xs]
        y = [miss if t is None else t for t in ys]
        if len(set(x + y)) == 1:
            p = 1.0  # every trial the same (all missed, say): nothing to rank
        else:
            p = float(mannwhitneyu(x, y, alternative="two-sided").pvalue)
        a12 = campaign.a12_faster(xs, ys)
        row = {"name": c["name"], "engine": c["engine"], "trials_baseline": len(ys), "trials_new": len(xs),
               "median_baseline": campaign.median_time(ys), "median_new": campaign.median_time(xs),
               "killed_baseline": sum(t is not None for t in ys), "killed_new": sum(t is not None for t in xs),
               "a12": round(a12, 3), "p": p, "verdict": campaign.verdict(a12, p, ALPHA)}
        floor = smallest_p(len(xs), len(ys))
        if floor >= ALPHA:
            row["note"] = f"{len(ys)} vs {len(xs)} trials cannot reach p < {ALPHA} (smallest p {floor:.2g})"
        rows.append(row)
    return rows


def format_row(r: dict) -> str:
    """One line: bug/engine, medians, A12, p, verdict."""
    def med(v, k, n):
        return (f"{v:.2f}s" if v is not None else "not killed") + f" ({k}/{n})"
    line = (f"{r['name']} / {r['engine']}: median {med(r['median_baseline'], r['killed_baseline'], r['trials_baseline'])}"
            f" -> {med(r['median_new'], r['killed_new'], r['trials_new'])}; A12 {r['a12']:.2f}, p {r['p']:.3g}: "
            f"{r['verdict']}")
    if r.get("note"):
        line += f" [{r['note']}]"
    return line


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: stats.py OLD.json NEW.json", file=sys.stderr)
        return 2
    try:
        import scipy.stats  # noqa: F401
    except ImportError:
        print(f"stats: error: {sys.executable} has no scipy; install it with: "
              "sudo apt-get install -y python3-scipy (or run ci/vmfuzz setup as root)", file=sys.stderr)
        return 2
    try:
        old = campaign.load_mutants_json(Path(argv[0]))
        new = campaign.load_mutants_json(Path(argv[1]))
        rows = compare(old, new, argv[0], argv[1])
    except campaign.BadInput as e:
        print(f"stats: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
