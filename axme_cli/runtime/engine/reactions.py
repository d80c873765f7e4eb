"""The one dispatcher: what reacts to each effect of a change, inside the change's transaction.

An operation changes an intent (``changes.apply_event``, ``changes.insert_new_intent``, a timer firing) and
collects what followed in a list of effects; ``settle`` hands each, in order, to the reactions below, and what
the reactions cause in turn (the next step's sub-intent to deliver, a workflow parent ended) joins the same list.
Operations settle right after each change, before they look at anything a reaction writes (a ``reply_to``
thread, a child a workflow canceled), so the order of writes is the order of causes.

  Ended        -> inbox.on_ended (the ``reply_to`` owner's thread), runs.on_ended (a workflow moves on)
  DeliveryDue  -> delivery.on_delivery_due (a feed row, or a POST to an http agent)
  TimerDue     -> runs.on_timer (a workflow parent) or human_tasks.on_timer (a direct task's reminders)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from axme_cli.runtime.engine import delivery, human_tasks, inbox, runs
from axme_cli.runtime.engine.codec import loads
from axme_cli.runtime.engine.effects import DeliveryDue, Effect, Ended, TimerDue
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Tx


def _on_timer(tx: Tx, s: Settings, due: TimerDue, fx: list[Effect]) -> None:
    if loads(due.row["doc"]).get("workflow_parent"):
        runs.on_timer(tx, s, due.row, due.now, fx)
    else:
        human_tasks.on_timer(tx, s, due.row, due.now)


REACTIONS: dict[type, tuple[Callable[[Tx, Settings, Any, list[Effect]], None], ...]] = {
    Ended: (inbox.on_ended, runs.on_ended),
    DeliveryDue: (delivery.on_delivery_due,),
    TimerDue: (_on_timer,),
}


def settle(tx: Tx, s: Settings, fx: list[Effect]) -> None:
    """React to every effect in ``fx`` and to every effect those reactions add; ``fx`` is empty after."""
    i = 0
    while i < len(fx):
        effect = fx[i]
        for react in REACTIONS[type(effect)]:
            react(tx, s, effect, fx)
        i += 1
    fx.clear()
