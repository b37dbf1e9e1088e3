"""A/B testing of model variants: offline paired tests, an online experiment server, and its statistics."""
