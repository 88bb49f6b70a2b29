"""The next step and whether it may run: the ladder, sizing, risk with reasons, the guards and their inputs, freeze windows, the per-target claim, probable cause, adaptive ordering."""
