"""A hand-written SimPy model of the marketplace lifecycle, as a competent user would write it.

Same lifecycle and distributions as scenarios/populations/marketplace_year.yaml (offer, funding,
acceptance, work, a review that races the 14-day window, change requests, partial releases,
bonuses, refund requests that race the 7-day window, disputes queued at a team of agents), with
money in integer cents and one generator process per contract. No policy file, no rule checks,
no ledger, no event log. Like the engine with its event log off, it keeps one record per closed
milestone (amount, funded, first submitted, closed, outcome), which is what the KPIs need: the
yardstick the rules-driven engine is measured against.
"""

from __future__ import annotations

import math

import numpy as np
import simpy

WINDOW, REFUND_WINDOW = 14.0, 7.0


def contract(env, rng, team, stats, rows):
    n = max(1, int(rng.poisson(2)))
    amounts = [max(1, round(rng.lognormal(math.log(250), 0.9) * 100)) for _ in range(n)]
    fund_at = rng.exponential(1.0)
    accepts = rng.random() < 0.95
    accept_at = rng.exponential(1.0)
    withdraw = rng.random() < 0.02
    withdraw_at = rng.exponential(2.0) if withdraw else math.inf
    if withdraw_at < accept_at:
        yield env.timeout(withdraw_at)
        stats["refunded"] += amounts[0] if fund_at <= withdraw_at else 0
        return
    yield env.timeout(accept_at)
    if not accepts:
        stats["refunded"] += amounts[0] if fund_at <= accept_at else 0
        return
    if fund_at > accept_at:
        yield env.timeout(fund_at - accept_at)
    credit = 0
    for i, amount in enumerate(amounts):
        if i:
            yield env.timeout(rng.exponential(1.0))
        stats["funded"] += amount - min(credit, amount)
        credit -= min(credit, amount)
        escrow = amount
        funded_at = env.now
        yield env.timeout(rng.gamma(1 / 0.36, 6 * 0.36))
        submitted_at = env.now
        while True:  # one review round: the client's delay races the window
            delay = rng.exponential(4.0)
            u = rng.random()
            if delay >= WINDOW:
                yield env.timeout(WINDOW)
                stats["released"] += escrow
                stats["milestones"] += 1
                rows.append((amount, funded_at, submitted_at, env.now, "auto_approved"))
                break
            yield env.timeout(delay)
            if u < 0.78:
                stats["released"] += escrow
            elif u < 0.92:
                yield env.timeout(rng.exponential(2.0))
                continue
            elif u < 0.96:
                part = max(1, round(escrow * rng.uniform(0.3, 0.9)))
                stats["released"] += part
                credit += escrow - part
            elif u < 0.98:
                stats["released"] += escrow
                stats["bonus"] += round(escrow * rng.uniform(0.05, 0.25))
            else:
                answer = rng.random()
                wait = rng.exponential(3.0)
                if answer < 0.5 or answer >= 0.8:
                    yield env.timeout(min(wait, REFUND_WINDOW) if answer < 0.5 else REFUND_WINDOW)
                    stats["refunded"] += escrow + credit
                else:
                    yield env.timeout(wait)
                    handling = rng.exponential(5.0)
                    with team.request() as req:
                        yield req
                        yield env.timeout(handling)
                    stats["released"] += escrow // 2
                    stats["refunded"] += escrow - escrow // 2 + credit
                stats["milestones"] += 1
                rows.append((amount, funded_at, submitted_at, env.now, "refunded"))
                return
            stats["milestones"] += 1
            rows.append((amount, funded_at, submitted_at, env.now, "approved"))
            break


def run(rate: float, until: float, seed: int = 7) -> dict:
    """Play one replication; returns money totals and the number of closed milestones."""
    env = simpy.Environment()
    team = simpy.Resource(env, capacity=3)
    stats = dict.fromkeys(("funded", "released", "bonus", "refunded", "milestones"), 0)
    rows: list[tuple] = []
    arrivals = np.random.default_rng(np.random.SeedSequence((seed, 0)))

    def source(env):
        i = 0
        while True:
            yield env.timeout(arrivals.exponential(1 / rate))
            if env.now > until:
                return
            rng = np.random.default_rng(np.random.SeedSequence((seed, 0, i)))
            env.process(contract(env, rng, team, stats, rows))
            i += 1

    env.process(source(env))
    env.run(until=until)
    stats["rows"] = len(rows)
    return stats
