"""Inputs: scenario files, the population block and its distributions, validated with positions."""
