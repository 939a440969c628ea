"""Core: money and duration units, bounded YAML reading with positions, problems, schema validation.

Everything else builds on this layer; it imports nothing else of sim.
"""
