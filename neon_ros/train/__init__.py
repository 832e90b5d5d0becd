"""Head training on cached features: the loop, evaluation (open and closed loop), the demo head."""
