"""The service functions of each family: what the API calls, one function per action.

`maintenance` (org maintenance), `aggregate` (cube builds), `jobs` (service jobs) and
`windows` (maintenance windows). They validate, check access, and go through the store and
the runner; they know nothing of HTTP or of the products' envelopes (docs/architecture.md).
"""
