"""Recorded model answers for the pipeline's tests: what a capable model answers at each step,
written down once, replayed through ``RecordedBackend`` (the real ``ModelBackend`` interface).

``backend_for_agent`` is the backend factory the worker tests put in ``AGENTS_BACKEND_FACTORY``:
it replays ``SCRIPTS[agent.name]``, so a task run by the real worker gets a recorded model.
"""

from __future__ import annotations

from collections.abc import Callable

from agents.inference.backends import ModelBackend
from agents.inference.recorded import RecordedAnswer, RecordedBackend
from agents.models import Agent

PLAN = """Here is the plan:
```json
{"files": ["solution.py"], "functions": ["add(a: int, b: int) -> int"], "test_cases": ["2 + 3 is 5"]}
```"""
DESIGN = "One module, solution.py, with a pure function add(a, b) that returns the sum."
CODE_BAD = """```python path=solution.py
def add(a: int, b: int) -> int:
    return a - b
```"""
CODE_GOOD = """```python path=solution.py
def add(a: int, b: int) -> int:
    return a + b
```"""
TESTS = """```python path=test_solution.py
from solution import add


def test_add() -> None:
    assert add(2, 3) == 5
```"""
README = """```markdown path=README.md
# add

`solution.add(a, b)` returns the sum of two integers. Run the tests with `pytest`.
```"""

COMPLETES_FIRST_TIME: list[str | RecordedAnswer] = [PLAN, DESIGN, CODE_GOOD, TESTS, README]

SLOW_DESIGN = "The design, streamed slowly. " * 100

#: Agent name -> the backend its tasks get from ``backend_for_agent``.
SCRIPTS: dict[str, Callable[[], RecordedBackend]] = {
    "recorded-ok": lambda: RecordedBackend(COMPLETES_FIRST_TIME),
    # About 14 s of design at 8 characters every 0.05 s: time to cancel it mid-stream.
    # The tenant's default profile ("Coder", made by ``agent_default_get`` or a test): streamed
    # over about three seconds, so a client can watch it (the SSE and browser tests).
    "Coder": lambda: RecordedBackend(COMPLETES_FIRST_TIME, chunk_chars=8, chunk_delay=0.02),
    "recorded-slow": lambda: RecordedBackend(
        [PLAN, SLOW_DESIGN, CODE_GOOD, TESTS, README], chunk_chars=8, chunk_delay=0.05
    ),
}


def backend_for_agent(agent: Agent) -> ModelBackend:
    return SCRIPTS[agent.name]()
