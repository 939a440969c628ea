"""Run every benchmark in turn and print their figures (``make bench``). Not part of the tests.

python bench/run_all.py           # engine vs bare SimPy, scaling to 100k, parallel sweep, a 1M-row audit
python bench/run_all.py --full    # scaling up to 1M milestones and a 10M-row audit as well
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    full = "--full" in sys.argv[1:]
    runs = [
        ["bench_engine.py"],
        ["bench_scale.py", "10000", "100000", *(["1000000"] if full else [])],
        ["bench_parallel.py"],
        ["bench_audit.py", "1000000", *(["10000000"] if full else [])],
    ]
    for args in runs:
        print(f"\n== {' '.join(args)}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / args[0]), *args[1:]])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
