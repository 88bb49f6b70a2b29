"""Edges of the approval gate: Slack, and Kubernetes itself when Slack is down. The policy is core.approval."""
