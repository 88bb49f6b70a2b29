"""Edges that turn the world into signals: Alertmanager webhooks, pod states, SLO burn, anomalies."""
