"""The state machine: the vocabulary of states and actions, and the contract that decides every rule.

It is pure: no SimPy, no clock, no randomness.
"""
