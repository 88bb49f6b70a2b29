"""The Remediation state machine and the decision of each tick; which replica is active."""
