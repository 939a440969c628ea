"""Analysis: tables and KPIs from a run's record, and expectation checking."""
