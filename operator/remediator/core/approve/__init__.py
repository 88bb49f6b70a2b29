"""Who must approve a step, who may vote, the tally and what a timeout means."""
