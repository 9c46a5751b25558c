"""Maintenance windows: scheduled downtime of services, which holds back their service jobs.

Not a job family: it runs no jobs of its own. `service` keeps the windows and their
timers and is the service gate the runner asks before a gated family's run.
"""
