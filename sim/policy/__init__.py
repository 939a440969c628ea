"""The policy: the model of a pack (pydantic, frozen), packs by name or path, overrides, rule ids.

``from sim.policy import load_policy`` reads well, so the public names of :mod:`sim.policy.model`
are re-exported here.
"""

from .model import (
    RULE_IDS,
    Override,
    Policy,
    builtin_packs,
    load_policy,
    parse_set_option,
    resolve_pack,
)

__all__ = [
    "RULE_IDS",
    "Override",
    "Policy",
    "builtin_packs",
    "load_policy",
    "parse_set_option",
    "resolve_pack",
]
