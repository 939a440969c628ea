"""Make the audit example's inputs: a marketplace's event log with known deviations.

Runs ``marketplace.yaml`` (two months of the example marketplace under the ``upwork`` pack), then
writes what a marketplace's own export might look like:

- ``contracts.csv``: each contract's parties and milestones as offered (the run's ``contracts.csv``);
- ``clean_log.csv``: the run's events as the marketplace logs them: ISO 8601 timestamps in UTC,
  its own column names, actors and some action names (``mapping.yaml`` maps them back), and the
  contract's escrow balance after each row (from the ledger);
- ``production_log.csv``: the same log with one deviation of each kind injected, on different
  contracts, chosen with a fixed seed: an auto-release that never fired, one two days late, a
  refund by silence paid two days before its window ended, a second milestone funded while the
  first was still active, a release logged with the wrong amount, a wrong escrow balance, and an
  automatic release nothing explains;
- ``injected.csv``: what was injected, one row per expected finding (kind, contract, milestone,
  time in days, money at stake): the audit must find exactly these.

Run it from anywhere: ``python scenarios/audit/make_log.py [--out DIR]``. The same files come out
byte for byte every time.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

import sim
from sim.core.units import format_money, parse_money

HERE = Path(__file__).resolve().parent
SEED = 2026
START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
#: our names -> the marketplace's (mapping.yaml says the reverse)
COLUMNS = {
    "time": "created_at",
    "contract": "contract_id",
    "milestone": "milestone_id",
    "actor": "role",
    "action": "event",
    "outcome": "status",
    "amount": "amount",
    "args": "details",
    "escrow": "escrow_balance",
}
ACTORS = {"client": "buyer", "freelancer": "seller", "platform": "system"}
ACTIONS = {
    ("client", "fund"): "escrow_funded",
    ("client", "approve"): "milestone_approved",
    ("platform", "auto_approve"): "auto_released",
    ("platform", "auto_refund"): "auto_refunded",
    ("freelancer", "submit"): "work_submitted",
}


def run_log() -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The run's events (our names, time in days, money in minor units, with the escrow after
    each row) and its contracts."""
    result = sim.run(HERE / "marketplace.yaml")
    digits = result.scenario.policy.digits
    ev = result.events[
        ["time", "contract", "milestone", "actor", "action", "outcome", "amount", "args"]
    ].copy()
    ev = ev.reset_index(drop=True)
    led = result.ledger
    into = led["to_account"].str.startswith("escrow:")
    out_of = led["from_account"].str.startswith("escrow:")
    delta = np.zeros(len(ev), dtype=np.int64)
    np.add.at(delta, led["event"].to_numpy()[into.to_numpy()], led["amount"].to_numpy()[into.to_numpy()])
    np.subtract.at(
        delta, led["event"].to_numpy()[out_of.to_numpy()], led["amount"].to_numpy()[out_of.to_numpy()]
    )
    ev["escrow"] = pd.Series(delta).groupby(ev["contract"]).cumsum().to_numpy()
    return ev, result.contracts, digits


def inject(ev: pd.DataFrame, digits: int) -> tuple[pd.DataFrame, list[dict]]:
    """One deviation of each kind, each on its own contract; returns the log and what to find."""
    rng = np.random.default_rng(SEED)
    ev = ev.copy()
    ev["order"] = np.arange(len(ev), dtype=float)  # file order, kept through the edits
    used: set[str] = set()
    found: list[dict] = []
    horizon = float(ev["time"].max())

    def rows_of(cid: str) -> pd.DataFrame:
        return ev[ev["contract"] == cid]

    def pick(candidates: list[int]) -> int:
        candidates = [i for i in candidates if ev.at[i, "contract"] not in used]
        if not candidates:
            raise RuntimeError("no candidate left for an injection: change SEED or the run")
        i = int(candidates[int(rng.integers(len(candidates)))])
        used.add(ev.at[i, "contract"])
        return i

    def later(i: int) -> pd.DataFrame:
        rows = rows_of(ev.at[i, "contract"])
        return rows[rows["order"] > ev.at[i, "order"]]

    def expect(kind: str, i: int, at_stake: int, time: float | None = None) -> None:
        found.append(
            {
                "kind": kind,
                "contract": ev.at[i, "contract"],
                "milestone": ev.at[i, "milestone"],
                "time": ev.at[i, "time"] if time is None else time,
                "at_stake": format_money(int(at_stake), digits),
            }
        )

    autos = ev.index[(ev["action"] == "auto_approve")].tolist()
    # 1. an auto-release that never fired: the client's end_contract is all that follows, on money still held
    cands = [
        i for i in autos if set(later(i)["action"]) <= {"end_contract"} and ev.at[i, "time"] < horizon - 1
    ]
    i = pick(cands)
    expect("missing_automatic", i, ev.at[i, "amount"])
    ev.loc[later(i).index, "escrow"] += ev.at[i, "amount"]
    ev = ev.drop(index=i)
    autos.remove(i)
    # 2. an auto-release two days late: nothing else happens on the contract meanwhile
    cands = [i for i in autos if later(i).empty or later(i)["time"].min() > ev.at[i, "time"] + 2]
    cands = [i for i in cands if ev.at[i, "time"] + 2 < horizon]
    i = pick(cands)
    ev.at[i, "time"] += 2.0
    expect("late", i, ev.at[i, "amount"])
    autos.remove(i)
    # 3. a refund by silence paid two days before the freelancer's window ended
    refunds = ev.index[ev["action"] == "auto_refund"].tolist()
    cands = []
    for i in refunds:
        rows = rows_of(ev.at[i, "contract"])
        before = rows[rows["order"] < ev.at[i, "order"]]
        if before.empty or before["time"].max() < ev.at[i, "time"] - 2:
            cands.append(i)
    i = pick(cands)
    ev.at[i, "time"] -= 2.0
    expect("early", i, ev.at[i, "amount"])
    # 4. a second milestone funded while the first was still active (the pack funds one at a time)
    cands = []
    for i in ev.index[(ev["action"] == "fund") & (ev["outcome"] == "accepted")]:
        rows = rows_of(ev.at[i, "contract"])
        mine = rows[rows["order"] < ev.at[i, "order"]]
        released = mine[mine["action"].isin(["approve", "auto_approve"])]
        accepted = mine[mine["action"] == "accept_offer"]
        funded = mine[(mine["action"] == "fund") & (mine["outcome"] == "accepted")]
        if len(released) != 1 or accepted.empty or len(funded) != 1:
            continue  # the second milestone funded, while only the first is active
        last_release = released.iloc[-1]
        start = float(accepted["time"].iloc[0])
        if last_release["time"] - start > 1:
            cands.append(i)
    i = pick(cands)
    rows = rows_of(ev.at[i, "contract"])
    mine = rows[rows["order"] < ev.at[i, "order"]]
    release = mine[mine["action"].isin(["approve", "auto_approve"])].iloc[-1]
    start = float(mine[mine["action"] == "accept_offer"]["time"].iloc[0])
    new_t = round((start + float(release["time"])) / 2 * 24) / 24  # on the hour
    between = rows[(rows["time"] >= new_t) & (rows["order"] < ev.at[i, "order"])]
    amount = int(ev.at[i, "amount"])
    ev.loc[between.index, "escrow"] += amount
    prior = rows[(rows["time"] <= new_t) & (rows["order"] < ev.at[i, "order"])]
    ev.at[i, "escrow"] = int(prior["escrow"].iloc[-1]) + amount if not prior.empty else amount
    ev.at[i, "time"] = new_t
    ev.at[i, "order"] = float(prior["order"].iloc[-1]) + 0.5 if not prior.empty else -1.0
    expect("rejected_by_policy", i, amount)
    # 5. a client's release logged 1.00 short
    approves = ev.index[(ev["action"] == "approve") & (ev["args"] == "") & (ev["amount"] > 100)].tolist()
    i = pick(approves)
    ev.at[i, "amount"] -= 100
    expect("amount_mismatch", i, 100)
    # 6. a funding logged with the escrow 10.00 too high
    funds = ev.index[(ev["action"] == "fund") & (ev["outcome"] == "accepted")].tolist()
    i = pick(funds)
    ev.at[i, "escrow"] += 1000
    expect("balance_mismatch", i, 1000)
    # 7. an automatic release a day after the client had released the money: nothing explains it
    approves = ev.index[(ev["action"] == "approve") & (ev["args"] == "")].tolist()
    approves = [j for j in approves if ev.at[j, "time"] + 1 < horizon]
    i = pick(approves)
    rows = rows_of(ev.at[i, "contract"])
    t = float(ev.at[i, "time"]) + 1
    prior = rows[rows["time"] <= t]
    extra = ev.loc[i].copy()
    extra["actor"], extra["action"], extra["args"] = "platform", "auto_approve", ""
    extra["time"], extra["escrow"] = t, int(prior["escrow"].iloc[-1])
    extra["order"] = float(prior["order"].iloc[-1]) + 0.5
    ev.loc[len(ev) + 10**6] = extra
    found.append(
        {
            "kind": "unexpected_automatic",
            "contract": extra["contract"],
            "milestone": extra["milestone"],
            "time": t,
            "at_stake": format_money(int(extra["amount"]), digits),
        }
    )
    ev = ev.sort_values(["time", "order"], kind="stable").drop(columns="order").reset_index(drop=True)
    return ev, found


def export(ev: pd.DataFrame, digits: int) -> pd.DataFrame:
    """The log as the marketplace writes it: its names, ISO timestamps, money in major units."""
    out = pd.DataFrame()
    ticks = np.round(ev["time"].to_numpy(dtype=float) * 86_400_000).astype(np.int64)
    out["time"] = [
        (START + dt.timedelta(milliseconds=int(t))).isoformat(timespec="milliseconds") for t in ticks
    ]
    out["contract"] = ev["contract"].to_numpy()
    out["milestone"] = ev["milestone"].to_numpy()
    out["actor"] = [ACTORS[a] for a in ev["actor"]]
    out["action"] = [ACTIONS.get((a, n), n) for a, n in zip(ev["actor"], ev["action"], strict=True)]
    out["outcome"] = ev["outcome"].to_numpy()
    out["amount"] = [format_money(int(v), digits) for v in ev["amount"]]
    out["args"] = ev["args"].to_numpy()
    out["escrow"] = [format_money(int(v), digits) for v in ev["escrow"]]
    return out.rename(columns=COLUMNS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: this folder)")
    args = parser.parse_args(argv)
    ev, contracts, digits = run_log()
    args.out.mkdir(parents=True, exist_ok=True)
    contracts = contracts.copy()
    contracts["amount"] = [format_money(int(v), digits) for v in contracts["amount"]]
    contracts["due"] = ["" if pd.isna(v) else f"{v:g}" for v in contracts["due"]]
    contracts.to_csv(args.out / "contracts.csv", index=False, lineterminator="\n")
    export(ev, digits).to_csv(args.out / "clean_log.csv", index=False, lineterminator="\n")
    bad, found = inject(ev, digits)
    export(bad, digits).to_csv(args.out / "production_log.csv", index=False, lineterminator="\n")
    expected = pd.DataFrame(found).sort_values(["time", "contract"], kind="stable")
    expected["time"] = [f"{t:.9f}".rstrip("0").rstrip(".") for t in expected["time"]]
    expected.to_csv(args.out / "injected.csv", index=False, lineterminator="\n")
    total = sum(parse_money(v, digits) for v in expected["at_stake"])
    print(f"{len(bad):,} rows, {len(found)} deviations injected, {format_money(total, digits)} at stake")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
