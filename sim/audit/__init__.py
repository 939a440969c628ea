"""Audits of a marketplace's own event log against a pack, and calibration from it (FORMAT section 10).

``log`` reads and validates the log and the contracts list; ``replay`` plays the log through the
engine and reports where it departs from the pack.
"""
