"""An audit of a big event log: wall time, rows per second and peak memory, by log size.

The log is the audit example's clean log (scenarios/audit/clean_log.csv, in our own names) played
over and over: copy k has its contracts renamed ``c17~k`` and its times shifted by k x 60 days
(only the contracts the base log finishes are copied, so the log conforms and the audit must
find nothing). The parties are the same in every copy (a marketplace's clients come back). Each
size is audited in a fresh process, so its peak RSS is its own: bounded memory shows as a peak that does not
grow with the number of rows (it grows with the contracts in flight and the contracts list).

    python bench/bench_audit.py [1000000 10000000]

Prints one line per size. Not part of the test suite; the logs go to a temporary folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "scenarios" / "audit"

CHILD = r"""
import json, resource, sys, time
import sim
from sim.audit.replay import audit
t = time.perf_counter()
result = audit(sys.argv[1], sys.argv[2], sim.load_policy("upwork"))
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": result.rows, "contracts": result.contracts, "findings": len(result.findings),
                  "wall_s": wall, "peak_mib": peak}))
"""


def _base() -> tuple[pd.DataFrame, pd.DataFrame]:
    from sim.audit.log import load_mapping

    mapping = load_mapping(EXAMPLE / "mapping.yaml")
    log = pd.read_csv(EXAMPLE / "clean_log.csv", dtype=str, keep_default_na=False)
    log = log.rename(columns={theirs: ours for ours, theirs in mapping.columns.items()})
    log["actor"] = log["actor"].map(lambda a: mapping.actors.get(a, a))
    log["action"] = log["action"].map(lambda a: mapping.actions.get(a, a))
    stamps = pd.to_datetime(log["time"], format="ISO8601")
    log["time"] = (stamps - pd.Timestamp("2026-01-05", tz="UTC")).dt.total_seconds() / 86400
    contracts = pd.read_csv(EXAMPLE / "contracts.csv", dtype=str, keep_default_na=False)
    # only contracts the base log finishes: one still running at its end would run on into the next copy
    last = log.groupby("contract")["action"].last()
    done = set(last.index[last.isin(["end_contract", "decline_offer", "withdraw_offer", "offer_expired"])])
    return log[log["contract"].isin(done)].reset_index(drop=True), contracts[contracts["contract"].isin(done)]


def write_log(rows: int, folder: Path) -> tuple[Path, Path, int]:
    """A log of about ``rows`` rows (whole copies of the base), and its contracts file."""
    base, contracts = _base()
    copies = max(1, round(rows / len(base)))
    log_path, contracts_path = folder / f"log_{rows}.csv", folder / f"contracts_{rows}.csv"
    with log_path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(base.columns) + "\n")
        for k in range(copies):
            part = base.copy()
            part["contract"] = part["contract"] + f"~{k}"
            part["time"] = part["time"] + 60.0 * k
            part = part.iloc[np.argsort(part["time"].to_numpy(), kind="stable")]
            part["time"] = part["time"].map(lambda t: f"{t:.9f}")
            part.to_csv(out, header=False, index=False, lineterminator="\n")
    with contracts_path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(contracts.columns) + "\n")
        for k in range(copies):
            part = contracts.assign(contract=contracts["contract"] + f"~{k}")
            part.to_csv(out, header=False, index=False, lineterminator="\n")
    return log_path, contracts_path, copies


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [1_000_000, 10_000_000]
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        for rows in sizes:
            log, contracts, _copies = write_log(rows, Path(tmp))
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(log), str(contracts)],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(out.stdout)
            print(
                f"audit {r['rows']:>11,} rows  {r['contracts']:>9,} contracts  {r['findings']:>6,} findings "
                f"(expected 0)  {r['wall_s']:7.1f} s  {r['rows'] / r['wall_s']:>9,.0f} rows/s  "
                f"peak {r['peak_mib']:6.0f} MiB",
                flush=True,
            )
            log.unlink()
            contracts.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
