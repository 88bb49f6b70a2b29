"""Writers of the record: Remediation status, Events, metrics, traces; and the report."""
