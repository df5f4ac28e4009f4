"""``micro proxy``: the services of an environment, reached through one address."""
