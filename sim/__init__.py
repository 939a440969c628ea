"""milestone-sim: rules-driven simulation of escrow milestone policies.

>>> import sim
>>> result = sim.run("scenarios/upwork/auto_approve_after_silence.yaml")  # doctest: +SKIP
>>> result.events, result.ledger, result.milestones, result.balances, result.kpis
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any

    from .viz.plots import Plotter

from .core.yamlio import InputError
from .experiments.batch import Result, run
from .experiments.paired import CompareResult, PacksResult, compare
from .experiments.sweeps import SweepResult, sweep
from .inputs.scenario import Scenario, load_scenario
from .policy.model import Policy, load_policy


# The runs (sim.experiments) sit below the charts (sim.viz), so this top level, which sees every
# layer, plugs the charts into `Result`. The imports are lazy: `import sim` does not load matplotlib.
def _plotter(result: Result) -> Plotter:
    """``result.plot``."""
    from .viz.plots import Plotter

    return Plotter(result)


def _reporter(result: Result, folder: Path) -> Path:
    """``result.write(..., report=True)``: the charts and report.html."""
    from .viz import report

    return report.write_report(result, folder)


def _charter(result: PacksResult, kpis: Sequence[str] | None) -> dict[str, Any]:
    """The charts of a comparison of packs (``sim.compare(..., policies=[...])``)."""
    from .viz.market_charts import draw_all

    return draw_all(result, kpis)


Result.plotter = _plotter
Result.reporter = _reporter
PacksResult.charter = _charter


def audit_log(log: str | Path, contracts: str | Path, policy: str | Policy, **options: Any) -> Any:
    """Replay a marketplace's event log against a pack (FORMAT section 10): an ``AuditResult``
    with ``frame()`` (audit.csv's rows), ``by_rule()``, ``summary()`` and ``conforms``.

    ``options``: ``tolerance`` (days), ``start`` (a date), ``mapping`` (a path to a mapping file
    or a ``sim.audit.log.Mapping``), ``chunk_rows``. (Not ``sim.audit``: that is the subpackage.)
    """
    from .audit.replay import audit as _audit

    pack, mapping = _log_inputs(policy, options.pop("mapping", None))
    return _audit(log, contracts, pack, mapping=mapping, **options)


def calibrate(log: str | Path, contracts: str | Path, policy: str | Policy, **options: Any) -> Any:
    """Estimate a population from a marketplace's event log (FORMAT section 10): a
    ``Calibration`` with ``yaml()`` (the population file's text), ``fits`` and ``mixes``.

    ``options``: ``start`` (a date), ``mapping`` (a path or a ``Mapping``).
    """
    from .audit.calibrate import calibrate as _calibrate

    pack, mapping = _log_inputs(policy, options.pop("mapping", None))
    return _calibrate(log, contracts, pack, mapping=mapping, **options)


def _log_inputs(policy: str | Policy, mapping: Any) -> tuple[Policy, Any]:
    """The pack (loaded when named) and the mapping (read when it is a path) of a log function."""
    from pathlib import Path as _Path

    from .audit.log import Mapping, load_mapping

    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = load_mapping(_Path(mapping))
    return (load_policy(policy) if isinstance(policy, str) else policy), mapping


__all__ = [
    "CompareResult",
    "InputError",
    "PacksResult",
    "Policy",
    "Result",
    "Scenario",
    "SweepResult",
    "__version__",
    "audit_log",
    "calibrate",
    "compare",
    "load_policy",
    "load_scenario",
    "run",
    "sweep",
]
