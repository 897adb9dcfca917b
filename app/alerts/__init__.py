"""Usage alerts: a threshold on a metric's usage in a customer's billing period, announced once per crossing."""
