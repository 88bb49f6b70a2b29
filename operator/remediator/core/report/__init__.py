"""What the records add up to and how long they are kept: per-Runbook statistics, the maturity report, simulation, retention of ended Remediations."""
