"""Did the step work? `probes` look at the cluster (edge); `verdicts` judge what they saw (pure)."""
