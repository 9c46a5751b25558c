"""Service jobs: jobs that call a configured HTTP service, owned by no org.

`family` is the `Family` the runner and the views see; `service` the actions the API and
the operator view call; `frequency` the job definition's frequency shapes.
"""
