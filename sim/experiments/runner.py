"""One replication of a scenario: build the simulation, play it, collect its tables.

The unit of work every front end shares: ``sim.run`` plays replications one after another or in
worker processes, and sweeps send the same call to process or Dask workers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..analysis.tables import STATE_COLUMNS, RunTables, tables_from
from ..engine.simulation import Simulation
from ..inputs.scenario import Scenario


def run_replication(
    scenario: Scenario, replication: int, seed: int, events: str = "full", bar: Any = None
) -> RunTables:
    """Play one replication of a scenario and return its tables.

    ``bar`` (a tqdm bar counting simulated days) is advanced once a simulated day.
    """
    keep = events == "full"
    sim = Simulation(
        scenario.policy,
        until=scenario.until,
        keep_events=keep,
        balance_every=None if keep else 1.0,
        start=scenario.start,
    )
    if scenario.is_population:
        from ..behaviour.population import populate

        populate(sim, scenario, replication, seed)
        if bar is not None and scenario.until:
            sim.every_day(lambda: bar.update(1))
    else:
        for spec in scenario.contracts:
            sim.add_contract(spec)
        for spec in scenario.contracts:
            sim.script(spec)
    end = sim.run()
    tables = tables_from(sim, replication, end, scenario.policy.digits)
    tables.states = pd.DataFrame.from_records(sim.rec.states, columns=list(STATE_COLUMNS))
    tables.accounts = sorted(sim.ledger.balances)
    if not scenario.is_population:
        tables.contract_states = {cid: c.state for cid, c in sim.contracts.items()}
        tables.escrow_by_contract = {cid: c.escrow() for cid, c in sim.contracts.items()}
    if sim.dispute_queue:
        tables.dispute_queue = pd.DataFrame(sim.dispute_queue, columns=["time", "queue"])
    return tables
