"""Late submissions: how late (nbgrader's due date, extension and collect's timestamp) and the
course's late-penalty rule, the same for ``report`` (totals.csv, scores.csv) and ``feedback``
(the student's page and index).

nbgrader keeps the due date (``nbgrader db assignment add ASSIGNMENT --duedate ...``), each
student's extension, and the time ``collect`` recorded; a submission's lateness is
``timestamp - (duedate + extension)``. The penalty is opt-in, per course: ``--late-penalty
RULE`` on ``report`` or ``feedback`` saves the rule in ``<course>/late_penalty.txt`` (once that
run has written its reports or pages) and both apply it from then on (``--late-penalty none``
drops it). The rules, as nbgrader's LateSubmissionPlugin words its own (``none``, ``zero``)
plus a percentage per day or hour:

* ``none`` (the default): lateness is told, no points are taken;
* ``zero``: a late submission scores 0 (nbgrader's ``penalty_method = 'zero'``);
* ``P%/day`` or ``P%/hour`` (0 < P <= 100): P percent of the assignment's points are taken per
  day (hour) or part of one after the due date, so 1 minute late with ``10%/day`` costs 10%.

The points taken never exceed the points earned: a total never goes below 0 (nbgrader's
export does the same: ``max(0, score - penalty)``). The penalty depends only on the lateness and
the assignment's points, never on the earned score, so a hand grade given later is penalised by
the same rule.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from grader.gradebook import UsageError, atomic_write_text

RULES = ("none, zero, or P%/day or P%/hour with 0 < P <= 100 (P percent of the assignment's "
         "points taken per day or hour late, each part of one counting whole)")
RULE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*%\s*/\s*(day|hour)")
FILE = "late_penalty.txt"


def duration(seconds: float) -> str:
    """``2 d 3 h``, ``3 h 5 min``, ``12 min``, ``40 s``: how late, to the unit that matters."""
    m, sec = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    d, h = divmod(h, 24)
    return (f"{d} d {h} h" if d else f"{h} h {m} min" if h else f"{m} min" if m
            else f"{sec} s")


@dataclass(frozen=True)
class Lateness:
    """A submission handed in after its due date (the extension included)."""
    timestamp: datetime
    duedate: datetime             # the student's: the assignment's plus the extension
    seconds: float
    extension: float = 0.0        # seconds of the student's extension (nbgrader's)

    def text(self) -> str:
        ext = (f" (the assignment's plus an extension of {duration(self.extension)})"
               if self.extension else "")
        return (f"handed in {self.timestamp:%Y-%m-%d %H:%M:%S} UTC, {duration(self.seconds)} "
                f"after the due date {self.duedate:%Y-%m-%d %H:%M:%S} UTC{ext}")


def lateness(sub) -> Lateness | None:
    """The lateness of a gradebook submission (``nbgrader.api.SubmittedAssignment``), or
    ``None`` when on time or without a due date or timestamp."""
    seconds = sub.total_seconds_late
    if not seconds:
        return None
    ext = sub.extension.total_seconds() if sub.extension else 0.0
    return Lateness(sub.timestamp, sub.duedate, float(seconds), ext)


@dataclass(frozen=True)
class Rule:
    """A late-penalty rule (:data:`RULES`); ``text`` as it is saved and printed."""
    text: str = "none"
    percent: float = 0.0          # per unit; 100 for ``zero`` (whatever the lateness)
    unit: str | None = None       # "day" or "hour"; None for none and zero

    @property
    def none(self) -> bool:
        return self.text == "none"

    def units(self, seconds: float) -> int:
        """Days (hours) or parts of one ``seconds`` late covers."""
        return math.ceil(seconds / (86400 if self.unit == "day" else 3600))

    def points(self, seconds: float, max_score: float) -> float:
        """Points the rule takes from a submission ``seconds`` late out of ``max_score`` (at
        most ``max_score``; :func:`apply` caps it at the points earned)."""
        if self.none or seconds <= 0:
            return 0.0
        if self.unit is None:   # zero
            return float(max_score)
        return round(min(1.0, self.percent * self.units(seconds) / 100) * max_score, 6)

    def why(self, seconds: float, max_score: float) -> str:
        """How the rule gives its points: ``10% of the 12 points per day or part of one late,
        2 days: 2.4 points``."""
        if self.unit is None:
            return f"a late submission scores 0: {max_score:g} points"
        n = self.units(seconds)
        return (f"{self.percent:g}% of the {max_score:g} points per {self.unit} or part of one "
                f"late, {n} {self.unit}{'s' * (n != 1)}: "
                f"{self.points(seconds, max_score):g} points")


NONE = Rule()


def parse(value: str, arg: str = "--late-penalty") -> Rule:
    """The rule ``value`` names; a usage error naming ``arg``, the rule and the value."""
    text = value.strip().lower()
    if text in ("none", "zero"):
        return Rule(text, 100.0 if text == "zero" else 0.0)
    m = RULE_RE.fullmatch(text)
    if m and 0 < float(m[1]) <= 100:
        return Rule(f"{float(m[1]):g}%/{m[2]}", float(m[1]), m[2])
    raise UsageError(f"{arg} must be {RULES}; got {value!r}")


def path(root: Path) -> Path:
    return Path(root) / FILE


def load(root: Path) -> Rule:
    """The course's rule (``<course>/late_penalty.txt``; none without the file). A file that
    holds no rule is a usage error naming it (it was edited by hand)."""
    p = path(root)
    try:
        text = p.read_text().strip()
    except FileNotFoundError:
        return NONE
    except OSError as exc:
        raise UsageError(f"{p} must be a readable late-penalty rule; got {exc}") from exc
    return parse(text, arg=str(p))


def save(root: Path, rule: Rule) -> bool:
    """Make ``rule`` the course's; whether that changed it."""
    before = load(root)
    if rule.none:
        path(root).unlink(missing_ok=True)
    else:
        atomic_write_text(path(root), rule.text + "\n")
    return before != rule


def set_rule(root: Path, rule: Rule | None, command: str) -> None:
    """``--late-penalty``, once ``command`` has written what it writes: ``rule`` (parsed by
    :func:`parse` before the run, so a bad value is a usage error before anything is done)
    saved as the course's rule and said; ``None`` (no ``--late-penalty``) changes nothing."""
    if rule is None:
        return
    Path(root).mkdir(parents=True, exist_ok=True)
    changed = save(root, rule)
    where = f"saved in {path(root)}" if not rule.none else f"{path(root)} removed"
    state = "set" if changed else "unchanged"
    print(f"{command}: late penalty {rule.text} {state} ({where}; report and feedback apply "
          "it from now on)")


def apply(score: float, rule: Rule, late: Lateness | None, max_score: float
          ) -> tuple[float, float]:
    """``(score after the penalty, points taken)``: never below 0."""
    if late is None:
        return score, 0.0
    taken = min(max(score, 0.0), rule.points(late.seconds, max_score))
    return score - taken, taken


def record(earned: dict, taken: float) -> bool:
    """Write ``taken`` (the points :func:`apply` took from one submission) into the gradebook as
    nbgrader's ``late_submission_penalty`` of its notebooks (``earned``: each
    ``SubmittedNotebook`` and the points it counts), in notebook order, each at most its own
    points, so ``nbgrader export`` (``score = raw_score - late_submission_penalty``) and
    nbgrader's API give the total ``report`` gives; 0 where nothing is taken. Whether a value
    changed (the caller commits)."""
    changed = False
    left = taken
    for snb, points in earned.items():
        given = round(min(left, max(points, 0.0)), 6)
        left -= given
        if (snb.late_submission_penalty or 0.0) != given:
            snb.late_submission_penalty = given
            changed = True
    return changed
