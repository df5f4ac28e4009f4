"""What ``benchmarks.fuzz`` found for one target, and the Markdown table it prints."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._fuzz_cases import Case
from benchmarks._fuzz_io import NOT_HTTP, Held, Outcome

EXCUSED = " (excused)"
NO_ANSWER = {"closed": "none, target closed", "reset": "none, reset", "timeout": "none, timeout",
             "refused": "none, refused", "left": "none, client left early"}  # fmt: skip
_FRAME = re.compile(r'\s+File "(?:.*/)?([^/"]+)", line (\d+), in (\S+)')


@dataclass
class Result:
    target: str
    sent: int = 0
    bytes_sent: int = 0
    fuzz_seconds: float = 0.0
    answers: Counter[str] = field(default_factory=Counter)  # class of each input's first answer
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)  # the same, per input kind
    fives: Counter[str] = field(default_factory=Counter)  # "<code> <kind>" -> answers
    examples: dict[str, list[str]] = field(default_factory=dict)  # inputs behind each 5xx
    rss_mb: dict[str, float | None] = field(default_factory=dict)
    slowloris: Held | None = None
    idle: Held | None = None
    valid_start: bool = False
    valid_end: bool = False
    crashed: list[str] = field(default_factory=list)
    tracebacks: dict[str, int] = field(default_factory=dict)  # process -> count
    exceptions: Counter[str] = field(default_factory=Counter)  # "<exception> at <frame>"

    def record(self, case: Case, outcome: Outcome) -> None:
        self.sent += 1
        self.bytes_sent += len(case.data)
        first = outcome.codes[0] if outcome.codes else None
        if first is None:
            answer = NO_ANSWER[outcome.end]
        else:
            answer = "not HTTP" if first == NOT_HTTP else f"{first // 100}xx"
        self.answers[answer] += 1
        self.by_kind.setdefault(case.kind.split(":")[0], Counter())[answer] += 1
        for code in (c for c in outcome.codes if c >= 500):
            # a Timeout the input chose itself may pass: the gateway's 504 is then right
            excused = code == 504 and case.kind == "header:Timeout"
            key = f"{code} {case.kind}" + (EXCUSED if excused else "")
            self.fives[key] += 1
            if len(shown := self.examples.setdefault(key, [])) < 3:
                shown.append(repr(case.data[:600]))

    def five_count(self, *, excused: bool) -> int:
        return sum(n for k, n in self.fives.items() if k.endswith(EXCUSED) == excused)

    def faults(self) -> list[str]:
        found = [f"{c} crashed" for c in self.crashed]
        found += [f"{n} tracebacks in the {p} log" for p, n in self.tracebacks.items() if n]
        if bad := self.five_count(excused=False):
            found.append(f"{bad} answers 5xx")
        if not (self.valid_start and self.valid_end):
            found.append("a valid call failed")
        return found

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)  # asdict would rebuild the Counters from item pairs: keep plain dicts
        for name in ("answers", "fives", "exceptions"):
            data[name] = dict(getattr(self, name))
        data["by_kind"] = {kind: dict(counts) for kind, counts in self.by_kind.items()}
        return data


def count_tracebacks(log: Path, into: Counter[str]) -> int:
    """Lines of ``log`` starting with ``Traceback``; each one's exception and innermost frame
    (``UnicodeEncodeError at errors.py:151 in to_json``) is counted in ``into``."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    count = 0
    for i, line in enumerate(lines):
        if not line.startswith("Traceback"):
            continue
        count += 1
        frame = "?"
        for after in lines[i + 1 :]:
            if found := _FRAME.match(after):
                frame = f"{found[1]}:{found[2]} in {found[3]}"
            elif after[:1].strip():  # the first unindented line: the exception
                into[f"{after.split(':')[0][:80]} at {frame}"] += 1
                break
    return count


def _held(held: Held | None) -> str:
    if held is None:
        return "not run"
    times = held.closed_after
    if not times:
        return f"0 of {held.opened} closed"
    p50, worst, soon = times[len(times) // 2], times[-1], sum(t < 1 for t in times)
    at_once = f" ({soon} within 1 s)" if soon else ""
    return f"{len(times)} of {held.opened} closed{at_once}, p50 {p50:.1f} s, max {worst:.1f} s"


def _sent(r: Result) -> str:
    return f"{r.sent:,} ({r.bytes_sent / 1e6:,.0f} MB in {r.fuzz_seconds:.0f} s)"


def _answers(answer: str) -> Callable[[Result], str]:
    return lambda r: f"{r.answers[answer]:,}"


def _fives(r: Result) -> str:
    return f"{r.five_count(excused=False):,} ({r.five_count(excused=True):,})"


def _rss(moment: str) -> Callable[[Result], str]:
    return lambda r: "-" if r.rss_mb.get(moment) is None else f"{r.rss_mb[moment]:.1f}"


def _probes(r: Result) -> str:
    return " / ".join(
        "-" if h is None else ("ok" if h.probe_ok else "FAILED") for h in (r.slowloris, r.idle)
    )


def table(results: list[Result], *, slowloris: str, idle: str, pause: str) -> str:
    """One column per target; then the 5xx answers by input kind and the tracebacks by site."""
    answers = sorted({a for r in results for a in r.answers}, key=lambda a: (not a[0].isdigit(), a))
    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("inputs sent", _sent),
        *((f"first answer: {a}", _answers(a)) for a in answers),
        ("every 5xx answer (excused)", _fives),
        ("crashed", lambda r: ", ".join(r.crashed) or "no"),
        ("tracebacks logged", lambda r: ", ".join(f"{p} {n}" for p, n in r.tracebacks.items())),
        *((f"RSS MB {moment}", _rss(moment)) for moment in ("before", "after", pause)),
        (f"slowloris ({slowloris})", lambda r: _held(r.slowloris)),
        (f"idle ({idle})", lambda r: _held(r.idle)),
        ("valid call during slowloris / idle", _probes),
        ("valid call at the end", lambda r: "ok" if r.valid_end else "FAILED"),
    ]
    lines = ["| | " + " | ".join(r.target for r in results) + " |"]
    lines.append("|---" * (len(results) + 1) + "|")
    lines += [f"| {name} | " + " | ".join(cell(r) for r in results) + " |" for name, cell in rows]
    for r in results:
        for title, counts in (("5xx answers by input", r.fives), ("tracebacks", r.exceptions)):
            if counts:
                lines += ["", f"{r.target}, {title}:"]
                lines += [f"  {n:>7,}  {what}" for what, n in counts.most_common(8)]
    return "\n".join(lines)
