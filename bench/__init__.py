"""``make bench``: speed and cost of the bundle against the tutorial's approach, measured in one run."""
