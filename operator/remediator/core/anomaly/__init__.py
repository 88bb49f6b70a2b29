"""Anomaly scoring of a series against its learned baseline, and the anomaly signals."""
