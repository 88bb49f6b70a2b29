"""Did the step work? `probes` look at the cluster (edge); `readings` fold what they saw into the step record
and `verdicts` judge from it (pure)."""
