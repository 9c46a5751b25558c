"""Org maintenance: time-based maintenance schedules and maintenance runs, one org at a time.

`family` is the `Family` the runner and the views see; `service` the actions the API and
the operator view call.
"""
