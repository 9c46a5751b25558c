"""Cube builds: build schedules per org, project and cube, builds, and their history.

`family` is the `Family` the runner and the views see; `service` the actions the API and
the operator view call.
"""
