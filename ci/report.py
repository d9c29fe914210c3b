"""report — one HTML page (plus its SVG files) of what is under work/ (`ci/vmfuzz report`).

Theory of operation
-------------------
Runs under Debian's /usr/bin/python3, which sees python3-matplotlib (`ci/vmfuzz setup`
installs it); the driver stays standard library only and runs this file as a program:

    /usr/bin/python3 ci/report.py --work DIR --out OUT --replay BIN [--dot-tool dot]

It reads, through ci/campaign.py (standard library, unit-tested under any python3):
  1. campaigns: every timeline work/fuzz/TARGET/campaigns/*.tsv (and a bare fuzz.log no
     timeline covers), plotted as coverage, features, VM states, corpus size and exec/s
     over time, one line per campaign, one figure per target. A campaign cut off by
     Ctrl-C is drawn as far as it goes and labelled "cut off";
  2. the VM-state histogram: up to SHAPE_SAMPLE inputs of each vm_diff work corpus (or the
     checked-in seeds when there is none), each replayed with `vmfuzz-replay --dot`; the
     DOT of its final state gives chain depths, sharers, copy objects and pagers;
  3. findings: work/fuzz/TARGET/crashes/, one per signature: signature, the minimized
     trace, the text `vmfuzz-replay` prints for it (with the VMFUZZ_BUG of its stamp) and
     its object graph drawn by Graphviz as SVG;
  4. the kill matrix of the newest work/mutants/runs/*.json as a heat map (engine x bug,
     median seconds to kill; a miss is grey), and its --baseline comparison if it has one;
  5. the llvm-cov summary work/coverage/summary.txt, when `ci/vmfuzz coverage` ran.

Plots: matplotlib (python3-matplotlib), chosen over gnuplot because the page's other
parts are already Python and it writes standalone SVG with the text drawn as paths (no
fonts needed to view it); figures carry no date, and the SVG hash salt is fixed, so the
same input gives the same files.
The page: index.html with inline CSS and one small inline script that checks, once the
page has loaded, that every image decoded (it sets body[data-images-ok]="k/n" and logs a
console error naming any that did not; the browser test reads both). No external
resource: every image is a file beside the page, referenced by a relative name.

Exit status: 0 written; 2 nothing under DIR to report (with what to run first), or OUT
holds an index.html this program did not write (it is never overwritten).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import campaign  # noqa: E402  (ci/campaign.py)

MARKER = "<!-- written by ci/vmfuzz report -->"
SHAPE_SAMPLE = 300
SERIES = (("cov", "coverage (edges)"), ("ft", "features"), ("vm_states", "VM states"),
          ("corpus", "corpus size"), ("exec_s", "exec/s"))


def plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    matplotlib.rcParams["svg.hashsalt"] = "vmfuzz"
    matplotlib.rcParams["font.size"] = 9
    return pyplot


def save(fig, out: Path, name: str) -> str:
    path = out / name
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt().close(fig)
    return name


# ---------------------------------------------------------------------------------------
# Sections. Each returns HTML text (and writes its SVG files into out).


def section_campaigns(campaigns: list, out: Path) -> str:
    if not campaigns:
        return "<p class=none>No fuzzing campaign yet: run <code>ci/vmfuzz fuzz</code>.</p>"
    pyplot = plt()
    parts = []
    by_target: dict[str, list] = {}
    for c in campaigns:
        by_target.setdefault(c.header.get("target", "?"), []).append(c)
    for target, cs in by_target.items():
        fig, axes = pyplot.subplots(1, len(SERIES), figsize=(15, 2.8))
        for c in cs:
            xs = [r["seconds"] for r in c.rows]
            # The first finding of the campaign, where its timeline saw the crash count grow.
            first_crash = next((r["seconds"] for r in c.rows if (r.get("crashes") or 0) > 0), None)
            colour = None
            fork = c.header.get("jobs") not in (None, "", "1")
            for ax, (key, _title) in zip(axes, SERIES):
                if fork and key == "cov":
                    continue  # libFuzzer -fork=N counts "cov" another way: not comparable
                pts = [(x, r.get(key)) for x, r in zip(xs, c.rows) if r.get(key) is not None]
                if pts:
                    style = "-" if c.finished else "--"
                    marker = "o" if len(pts) < 3 else None  # a point or two is no line
                    (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker=marker,
                                      label=short_label(c), linewidth=1.2, color=colour)
                    colour = line.get_color()
                    if first_crash is not None:
                        ax.axvline(first_crash, color=colour, linestyle=":", linewidth=1)
        for ax, (_key, title) in zip(axes, SERIES):
            ax.set_title(title)
            ax.set_xlabel("seconds")
            ax.grid(alpha=0.3)
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8,
                       bbox_to_anchor=(0.5, -0.18 - 0.06 * (len(labels) // 4)))
        fig.suptitle(f"{target}: growth over time (dashed: cut off; dotted: first finding)", y=1.03)
        name = save(fig, out, "growth-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", target).strip("_") + ".svg")
        rows = []
        for c in cs:
            last = c.rows[-1] if c.rows else {}
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                c.label, c.state + (" — seconds estimated from execs/exec-s" if c.estimated else ""),
                f"{last.get('seconds', 0):.0f}", last.get("execs", "-"), last.get("cov", "-"), last.get("ft", "-"),
                last.get("vm_states") if last.get("vm_states") is not None else "-", last.get("corpus", "-"),
                last.get("exec_s", "-"), last.get("crashes") if last.get("crashes") is not None else "-",
                rel(c.source))) + "</tr>")
            if c.skipped:
                rows.append(f"<tr><td colspan=11 class=note>{c.skipped} unreadable line(s) skipped in "
                            f"{html.escape(rel(c.source))} (a line cut in half when the campaign stopped)</td></tr>")
        fork_note = ("<p class=note>Campaigns with several jobs (libFuzzer -fork) are left out of the coverage "
                     "plot: fork mode counts its <code>cov</code> another way, not comparable with one job's.</p>"
                     if any(c.header.get("jobs") not in (None, "", "1") for c in cs) else "")
        parts.append(f"<h3>{html.escape(target)}</h3><img class=wide src='{name}' alt='growth of {target}'>{fork_note}"
                     "<table><tr><th>campaign</th><th>state</th><th>s</th><th>execs</th><th>cov</th><th>ft</th>"
                     "<th>VM states</th><th>corpus</th><th>exec/s</th><th>crashes</th><th>timeline</th></tr>"
                     + "".join(rows) + "</table>")
    return "\n".join(parts)


def short_label(c) -> str:
    h = c.header
    s = h.get("started", "").replace("T", " ").rstrip("Z") or Path(c.source).name
    if h.get("bug"):
        s += f" bug={h['bug']}"
    if h.get("state_feedback") == "off":
        s += " no-state-feedback"
    if h.get("jobs") not in (None, "1"):
        s += f" x{h['jobs']}"
    return s


def corpus_sample(work: Path, root: Path) -> tuple[list[Path], str]:
    """Inputs for the VM-state histogram: the vm_diff work corpus, else the seeds."""
    for d, what in ((work / "fuzz" / "vm_diff" / "corpus", "the work corpus"),
                    (root / "corpus" / "vm_diff", "the checked-in seeds (no work corpus yet)")):
        if d.is_dir():
            files = sorted(p for p in d.iterdir() if p.is_file())
            if files:
                step = max(1, len(files) // SHAPE_SAMPLE)
                chosen = files[::step][:SHAPE_SAMPLE]
                return chosen, f"{len(chosen)} of the {len(files)} inputs of {what} ({rel(str(d))})"
    return [], ""


def section_shapes(work: Path, root: Path, replay: str | None, out: Path) -> str:
    files, what = corpus_sample(work, root)
    if not files:
        return "<p class=none>No vm_diff corpus to draw VM states from.</p>"
    if not replay or not Path(replay).exists():
        return "<p class=none>vmfuzz-replay is not built: run <code>ci/vmfuzz build</code>.</p>"
    shapes = []
    with tempfile.TemporaryDirectory(prefix="vmfuzz-report-") as tmp:
        dot = Path(tmp) / "g.dot"
        for f in files:
            if dot.exists():
                dot.unlink()
            subprocess.run([replay, "--quiet", "--dot", str(dot), str(f)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=clean_env())
            if dot.exists():
                shapes.append(campaign.vm_shape(campaign.parse_dot(dot.read_text())))
    if not shapes:
        return "<p class=none>No object graph came back from vmfuzz-replay.</p>"
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 4, figsize=(15, 2.8))

    def bars(ax, values, title, xlabel):
        counts: dict[int, int] = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        keys = sorted(counts)
        ax.bar([str(k) for k in keys], [counts[k] for k in keys], color="#4c72b0")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3, axis="y")

    bars(axes[0], [min(d, 8) for s in shapes for d in s["chain_depths"]], "shadow chain depth", "objects at depth (8 = 8+)")
    bars(axes[1], [min(r, 8) for s in shapes for r in s["sharers"]], "sharers", "ref count (8 = 8+)")
    bars(axes[2], [min(s["copy_objects"], 6) for s in shapes], "copy objects", "per state (6 = 6+)")
    ax = axes[3]
    ints = [min(s["internal_pagers"], 6) for s in shapes]
    exts = [min(s["external_objects"], 6) for s in shapes]
    keys = sorted(set(ints) | set(exts))
    w = 0.4
    ax.bar([k - w / 2 for k in keys], [ints.count(k) for k in keys], w, label="default pager (internal)")
    ax.bar([k + w / 2 for k in keys], [exts.count(k) for k in keys], w, label="external manager")
    ax.set_xticks(keys)
    ax.set_title("pagers")
    ax.set_xlabel("per state (6 = 6+)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    name = save(fig, out, "vm-states.svg")
    return (f"<p>The final VM state of {html.escape(what)}, as <code>vmfuzz-replay --dot</code> draws it "
            f"({len(shapes)} states, {sum(len(s['chain_depths']) for s in shapes)} objects).</p>"
            f"<img class=wide src='{name}' alt='VM-state histogram'>")


def clean_env(bug: str = "") -> dict:
    env = dict(os.environ)
    env.pop("VMFUZZ_BUG", None)
    if bug:
        env["VMFUZZ_BUG"] = bug
    return env


def section_findings(findings: list, replay: str | None, dot_tool: str, out: Path) -> str:
    if not findings:
        return "<p class=none>No finding under work/fuzz/*/crashes/.</p>"
    parts = []
    for i, f in enumerate(findings):
        sig = f.signature or "(not minimized: run ci/vmfuzz minimize on it for a trace and a signature)"
        head = (f"<h3>{html.escape(f.target)}: {html.escape(sig)}</h3><p>{f.count} input(s) with this signature; "
                f"representative <code>{html.escape(rel(str(f.crash)))}</code>"
                + (f", found with <code>VMFUZZ_BUG={html.escape(f.bug)}</code>" if f.bug else "") + "</p>")
        body = ""
        if f.minimized is not None:
            trace = f.minimized.read_text(errors="replace")
            body += (f"<p>Minimized trace <code>{html.escape(rel(str(f.minimized)))}</code>:</p>"
                     f"<pre>{html.escape(trace)}</pre>")
            if replay and Path(replay).exists():
                with tempfile.TemporaryDirectory(prefix="vmfuzz-report-") as tmp:
                    dot = Path(tmp) / "g.dot"
                    proc = subprocess.run([replay, "--dot", str(dot), str(f.minimized)], capture_output=True,
                                          text=True, env=clean_env(f.bug))
                    text = proc.stdout + proc.stderr
                    body += (f"<p><code>{'VMFUZZ_BUG=' + html.escape(f.bug) + ' ' if f.bug else ''}"
                             f"ci/vmfuzz replay {html.escape(rel(str(f.minimized)))}</code> (exit {proc.returncode}):</p>"
                             f"<pre class=diff>{html.escape(text)}</pre>")
                    if dot.exists():
                        svg = out / f"finding-{i + 1}.svg"
                        r = subprocess.run([dot_tool, "-Tsvg", "-o", str(svg), str(dot)], capture_output=True, text=True)
                        if r.returncode == 0:
                            body += (f"<p>The object graph at the divergence (the object that supplied the wrong "
                                     f"byte is red, its chain bold):</p><img class=graph src='{svg.name}' "
                                     f"alt='object graph of finding {i + 1}'>")
                        else:
                            body += f"<p class=note>dot -Tsvg failed: {html.escape(r.stderr.strip())}</p>"
                    else:
                        body += "<p class=note>vmfuzz-replay wrote no object graph for it.</p>"
        parts.append(f"<div class=finding>{head}{body}</div>")
    return "\n".join(parts)


def newest_mutants(work: Path) -> tuple[Path | None, dict | None, str]:
    runs = sorted((work / "mutants" / "runs").glob("*.json")) if (work / "mutants" / "runs").is_dir() else []
    for path in reversed(runs):
        try:
            return path, campaign.load_mutants_json(path), ""
        except campaign.BadInput as e:
            note = str(e)
            return None, None, note
    return None, None, ""


def section_mutants(work: Path, out: Path) -> str:
    path, doc, note = newest_mutants(work)
    if doc is None:
        return (f"<p class=note>{html.escape(note)}</p>" if note else
                "<p class=none>No kill matrix yet: run <code>ci/vmfuzz mutants</code> "
                "(e.g. <code>--engine libfuzzer --time 10 --trials 3</code>).</p>")
    cells = doc["mutants"]
    bugs = list(dict.fromkeys(c["name"] for c in cells))
    engines = list(dict.fromkeys(c["engine"] for c in cells))
    by = {(c["name"], c["engine"]): c for c in cells}
    pyplot = plt()
    import numpy as np
    from matplotlib import colors
    grid = np.full((len(bugs), len(engines)), np.nan)
    for i, b in enumerate(bugs):
        for j, e in enumerate(engines):
            c = by.get((b, e))
            if c and c.get("caught") and c.get("seconds") is not None:
                grid[i, j] = max(c["seconds"], 0.01)
    fig, ax = pyplot.subplots(figsize=(3.5 + 1.8 * len(engines), 1.6 + 0.32 * len(bugs)))
    cmap = pyplot.get_cmap("viridis_r").copy()
    cmap.set_bad("#d0d0d0")
    finite = grid[~np.isnan(grid)]
    vmax = float(finite.max()) if finite.size else 1.0
    vmin = float(finite.min()) / 1.5 if finite.size else 0.01
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto",
                   norm=colors.LogNorm(vmin=vmin, vmax=max(vmax, vmin * 2)))
    for i, b in enumerate(bugs):
        for j, e in enumerate(engines):
            c = by.get((b, e))
            if c is None:
                text = "-"
            elif c.get("caught") and c.get("seconds") is not None:
                text = f"{c['seconds']:.1f}s {c.get('trials_caught', '?')}/{c.get('trials', '?')}"
            else:
                text = f"missed 0/{c.get('trials', '?')}"
            # viridis_r: short times are light (black text), long ones dark (white text)
            dark = not np.isnan(grid[i, j]) and np.log(grid[i, j] / vmin) > 0.5 * np.log(max(vmax, vmin * 2) / vmin)
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(len(engines)), engines, rotation=20, ha="right")
    ax.set_yticks(range(len(bugs)), bugs, fontsize=7)
    fig.colorbar(im, ax=ax, label="median seconds to kill (log)")
    ax.set_title("kill matrix (grey: not killed)")
    name = save(fig, out, "kill-matrix.svg")
    html_out = (f"<p>{html.escape(doc.get('settings', ''))} — <code>{html.escape(rel(str(path)))}</code></p>"
                f"<img class=matrix src='{name}' alt='kill matrix heat map'>")
    base = doc.get("baseline")
    if base:
        import stats
        rows = "".join(f"<li>{html.escape(stats.format_row(r))}</li>" for r in base.get("comparison", []))
        html_out += (f"<h3>Against the baseline <code>{html.escape(rel(base.get('file', '?')))}</code></h3>"
                     "<p>A12 = P(this run kills sooner than the baseline) + ½ P(tie); p: two-sided Mann-Whitney U "
                     "(scipy); better/worse at p &lt; 0.05.</p><ul>" + (rows or "<li>nothing in common</li>") + "</ul>")
    return html_out


def section_coverage(work: Path) -> str:
    summary = work / "coverage" / "summary.txt"
    if not summary.is_file():
        return "<p class=none>No coverage run: <code>ci/vmfuzz coverage</code> writes one.</p>"
    lines = summary.read_text(errors="replace").splitlines()
    keep = [l for l in lines if l.startswith(("Filename", "---", "TOTAL")) or l.startswith(("vm/", "harness/"))]
    link = work / "coverage" / "html" / "index.html"
    return (f"<pre>{html.escape(chr(10).join(keep))}</pre>"
            + (f"<p>Line by line: <code>{html.escape(rel(str(link)))}</code></p>" if link.exists() else ""))


ROOT_FOR_REL = Path.cwd()


def rel(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT_FOR_REL))
    except ValueError:
        return str(path)


CSS = """
body { font-family: sans-serif; margin: 1.5em 2em; color: #222; max-width: 1500px; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 12px; }
pre.diff { background: #fff8f0; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
img.wide { width: 100%; max-width: 1500px; } img.graph { max-width: min(100%, 1000px); border: 1px solid #ddd; }
img.matrix { max-width: 100%; } .none { color: #777; font-style: italic; } .note { color: #a60; }
.finding { border-left: 4px solid #c33; padding-left: 1em; margin: 1em 0; }
nav a { margin-right: 1em; }
"""

SELF_CHECK = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0); });
  document.body.setAttribute('data-images-ok', (imgs.length - bad.length) + '/' + imgs.length);
  bad.forEach(function (i) { console.error('vmfuzz report: image did not load: ' + i.getAttribute('src')); });
});
"""


def write_page(out: Path, sections: list[tuple[str, str, str]], meta: str) -> Path:
    nav = "".join(f"<a href='#{sid}'>{html.escape(title)}</a>" for sid, title, _ in sections)
    body = "".join(f"<h2 id='{sid}'>{html.escape(title)}</h2>\n{content}\n" for sid, title, content in sections)
    page = (f"<!DOCTYPE html>\n{MARKER}\n<html lang=en><head><meta charset='utf-8'><title>vmfuzz report</title>"
            f"<style>{CSS}</style></head><body>\n<h1>vmfuzz report</h1><p>{meta}</p><nav>{nav}</nav>\n{body}"
            f"<script>{SELF_CHECK}</script></body></html>\n")
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page)
    os.replace(tmp, index)
    return index


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="report.py")
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--replay", help="vmfuzz-replay binary (findings, VM-state histogram)")
    ap.add_argument("--dot-tool", default="dot")
    ap.add_argument("--commit", default="")
    args = ap.parse_args(argv)
    global ROOT_FOR_REL
    work, out, root = Path(args.work).resolve(), Path(args.out).resolve(), Path(args.root).resolve()
    ROOT_FOR_REL = root
    campaigns = campaign.load_campaigns(work)
    findings = campaign.load_findings(work)
    mut_path, _doc, mut_note = newest_mutants(work)
    coverage = (work / "coverage" / "summary.txt").is_file()
    if not (campaigns or findings or mut_path or mut_note or coverage):
        print(f"report: nothing to report under {work}: run `ci/vmfuzz fuzz` first "
              "(or `ci/vmfuzz mutants`, `ci/vmfuzz coverage`), then `ci/vmfuzz report`", file=sys.stderr)
        return 2
    index = out / "index.html"
    ours = index.exists() and MARKER in index.read_text(errors="replace")[:400]
    if index.exists() and not ours:
        print(f"report: {index} exists and was not written by ci/vmfuzz report; not overwriting it "
              "(choose another --out)", file=sys.stderr)
        return 2
    if out.is_dir() and not ours and any(out.iterdir()):
        print(f"report: {out} holds files and no report of ours; not writing into it (choose an empty or new "
              "--out)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.svg"):  # an earlier report's pictures (ours: the folder has our index.html)
        old.unlink()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"report: error: {sys.executable} has no matplotlib; install it with: "
              "sudo apt-get install -y python3-matplotlib (or run ci/vmfuzz setup as root)", file=sys.stderr)
        return 2
    sections = [
        ("campaigns", "Campaigns: growth over time", section_campaigns(campaigns, out)),
        ("vm-states", "VM states reached", section_shapes(work, root, args.replay, out)),
        ("findings", f"Findings ({len(findings)})", section_findings(findings, args.replay, args.dot_tool, out)),
        ("mutants", "Kill matrix of the bug catalogue", section_mutants(work, out)),
        ("coverage", "Coverage (llvm-cov)", section_coverage(work)),
    ]
    meta = (f"From <code>{html.escape(rel(str(work)))}</code>, written "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
            + (f" at commit <code>{html.escape(args.commit)}</code>" if args.commit else "")
            + f": {len(campaigns)} campaign(s), {len(findings)} finding(s).")
    index = write_page(out, sections, meta)
    print(index)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
