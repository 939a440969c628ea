"""The engine: SimPy time, scripted steps, timers and the record of what happened."""
