"""Experiments: one replication, many (``sim.run``), sweeps, paired comparisons.

Also where runs execute (in-process, processes, Dask) and the output folders they write.
"""
