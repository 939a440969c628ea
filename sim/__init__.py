"""milestone-sim: rules-driven simulation of escrow milestone policies.

>>> import sim
>>> result = sim.run("scenarios/upwork/auto_approve_after_silence.yaml")  # doctest: +SKIP
>>> result.events, result.ledger, result.milestones, result.balances, result.kpis
"""

from __future__ import annotations

__version__ = "0.1.0"

from .batch import Result, run
from .paired import CompareResult, compare
from .policy import Policy, load_policy
from .scenario import Scenario, load_scenario
from .sweeps import SweepResult, sweep
from .yamlio import InputError

__all__ = [
    "CompareResult",
    "InputError",
    "Policy",
    "Result",
    "Scenario",
    "SweepResult",
    "__version__",
    "compare",
    "load_policy",
    "load_scenario",
    "run",
    "sweep",
]
