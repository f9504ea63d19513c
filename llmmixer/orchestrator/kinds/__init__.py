"""The run kinds: one small class per kind of run (an ask, a shell command, coding agents), registered against the
request model it runs.

:meth:`.runs.Runs.start` finds the kind of a request here (:func:`kind_for`), lets it check what only the service
can check (:meth:`RunKind.prepare`), then owns the lifecycle: it admits the run, gives it an id and a record, runs
:meth:`RunKind.run` in the run's cancel scope, and ends it with :meth:`RunKind.result`. A kind holds no lifecycle
of its own and knows nothing of the store, the cache or cancel beyond the flags of its :class:`~.runs.RunState`.

Adding a run kind is a request model (``requests.py``), a result model (``results.py``) and a class here (or in its
own module, as :mod:`.ask`, :mod:`.command` and :mod:`.agent` are) decorated with ``@register(TheRequest)``.
"""

from __future__ import annotations

from .base import KINDS, RunKind, kind_for, register

__all__ = ["KINDS", "RunKind", "kind_for", "register"]
