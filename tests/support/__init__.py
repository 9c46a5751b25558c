"""What test modules share, so that no test module imports another.

`api` builds the HTTP API over a real SQLite file driven by the test clock (the `make_api`
and `api` fixtures in conftest.py use it); `daemon` runs `schedd serve` and the CLI as
subprocesses; `web` holds the scopes, services, windows and the operator-view client that
the web and input tests share; `jobs` holds Volt MX's sample job.
"""
