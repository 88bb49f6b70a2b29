"""Burn rates, multiwindow multi-burn-rate alerting, and the sloBurn signals."""
