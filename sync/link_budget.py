"""How many bytes a user's next ``_changes`` page may carry, learnt from how their pulls go.

Small pages survive a link that cuts often; large pages waste fewer round trips on a link that does
not. The budget grows by a step each time the client confirms a page reached it, by writing its
pull checkpoint. Growth follows checkpoints, not page requests, because PouchDB asks for up to ten
``_changes`` pages ahead of what it has downloaded: counting requests grew the pages to 3 MB before
one photo had crossed the link (a link cut every ~1.3 MB then carried 1.35-1.79× its data over
eight seeds, 1.0-1.3× with this rule; doubling until the first retry, as TCP's slow start does,
gave 0.95-1.58×). A pull that asks again for changes it was already given is a retry after a cut:
the budget halves (additive increase, multiplicative decrease). A link that has delivered a run of
maximum-size pages without a retry is trusted: its pages are no longer bounded by bytes (0), and
the first retry bounds them again. A client that writes no checkpoint to the server keeps the
initial budget. The state is per user and per gateway process, kept in memory and forgotten after a
while: a wrong guess costs a page, never data. Behind several gateway processes each learns only
from the requests it serves (a checkpoint written through a process that served none of the user's
pages is not counted), so budgets move more slowly there, never beyond their bounds.
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["LinkBudgets", "progress_of"]

_IDLE_S = 30 * 60
_MAX_USERS = 50_000


def progress_of(positions: Mapping[str, str | int]) -> int:
    """A number that grows as a pull moves on: the sum of the sequences' numeric parts."""
    total = 0
    for seq in positions.values():
        head = str(seq).split("-", 1)[0]
        if head.isdigit():
            total += int(head)
    return total


@dataclass
class _State:
    budget: int
    asked: int
    """Progress of the latest page asked for."""
    delivered: int
    """Progress of the latest checkpoint the client wrote since it last started over."""
    seen_at: float
    deliveries_at_maximum: int = 0


class LinkBudgets:
    def __init__(
        self,
        initial: int,
        *,
        minimum: int = 64 * 1024,
        maximum: int = 4 * 1024 * 1024,
        trust_after: int = 8,
    ) -> None:
        self.initial = initial
        self.minimum = min(minimum, initial)
        self.maximum = max(maximum, initial)
        self.step = max(initial // 2, 1)
        self.trust_after = trust_after
        self._states: dict[str, _State] = {}

    def budget_for(self, user: str, progress: int, *, now: float | None = None) -> int:
        """The byte budget of the page this user asks for now; 0 means unbounded (budgets off, or a
        trusted link)."""
        if self.initial <= 0:
            return 0
        moment = time.monotonic() if now is None else now
        state = self._states.get(user)
        if state is None or moment - state.seen_at > _IDLE_S:
            if len(self._states) >= _MAX_USERS:
                self._states.clear()
            state = _State(self.initial, progress, progress, moment)
            self._states[user] = state
        elif progress < state.asked:
            state.budget = max(self.minimum, state.budget // 2)
            state.deliveries_at_maximum = 0
            state.delivered = min(state.delivered, progress)
        state.asked = progress
        state.seen_at = moment
        return 0 if state.deliveries_at_maximum >= self.trust_after else state.budget

    def delivered(self, user: str, progress: int, *, now: float | None = None) -> None:
        """The user's client wrote a pull checkpoint at ``progress``: the pages up to it arrived."""
        state = self._states.get(user)
        if state is None or progress <= state.delivered:
            return
        state.delivered = progress
        state.budget = min(self.maximum, state.budget + self.step)
        at_maximum = state.budget == self.maximum
        state.deliveries_at_maximum = state.deliveries_at_maximum + 1 if at_maximum else 0
        state.seen_at = time.monotonic() if now is None else now
