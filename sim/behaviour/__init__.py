"""Behaviour: sampled parties that arrive, react and race the timers, and the dispute desk."""
