"""progress — one progress line for the driver's long verbs (standard library only).

Theory of operation
-------------------
A long verb (mutants, coverage, bench, test, a `fuzz --jobs N` campaign) knows how many
steps it has and what each is called. `Progress(steps, what)` is told `step(label)` when a
step starts and prints where the run is: the step, how far (k/N), time so far and a rough
estimate of what is left (the mean time of the steps done, times the steps to go; "?" until
one step has finished). Steps may carry a weight (a fuzzing trial of 60 s outweighs a
build check) so the estimate stays honest when steps differ.

On a terminal the line is rewritten in place (a carriage return, padded to the previous
line's width) and a newline ends it; anywhere else (CI logs, pipes, files) every update is
a plain line of its own, so a log reads top to bottom. Output goes to stderr by default:
verbs that print JSON keep stdout for the document. Verbs whose steps let other programs
print (builds, ctest, llvm-cov: `test`, `coverage`, `bench`) ask for plain lines always
(tty=False), since a line rewritten in place would land in the middle of their output;
`mutants` (children silent) and a `fuzz` campaign (its own status line) update in place.
"""

from __future__ import annotations

import sys
import time


def format_seconds(s: float | None) -> str:
    """12s, 3m05s, 1h02m; '?' for unknown."""
    if s is None:
        return "?"
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Progress:
    """Progress of `total` weighted steps of a verb named `what` (see the module doc)."""

    def __init__(self, steps: int, what: str, total_weight: float | None = None, stream=None,
                 tty: bool | None = None, clock=time.monotonic):
        self.total_steps = steps
        self.total = float(steps if total_weight is None else total_weight)
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.start = clock()
        self.done = 0.0          # weight of the steps finished
        self.steps = 0           # steps started
        self._pending = 0.0      # weight of the step running now
        self._width = 0

    def eta(self) -> float | None:
        """Seconds left, from the mean time per unit of weight done so far."""
        if self.done <= 0:
            return None
        rate = (self.clock() - self.start) / self.done
        return rate * max(self.total - self.done, 0.0)

    def line(self, label: str) -> str:
        elapsed = self.clock() - self.start
        frac = f"{self.steps}/{self.total_steps}"
        return (f"[{self.what}] {frac} {label} — {format_seconds(elapsed)} so far, "
                f"~{format_seconds(self.eta())} left")

    def _emit(self, text: str) -> None:
        if self.tty:
            pad = max(self._width - len(text), 0)
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def step(self, label: str, weight: float = 1.0) -> None:
        """A step starts: the previous one (if any) counts as done."""
        self.done += self._pending
        self._pending = weight
        self.steps += 1
        self._emit(self.line(label))

    def note(self, text: str) -> None:
        """A line that stays (a result), printed above the updating line on a terminal."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self, text: str | None = None) -> None:
        self.done += self._pending
        self._pending = 0.0
        if self.tty and self._width:
            self.stream.write("\n")
            self._width = 0
        if text:
            self.stream.write(f"[{self.what}] {text} ({format_seconds(self.clock() - self.start)})\n")
        self.stream.flush()
