"""The service functions of each seed family: what the API calls, one function per action.

They validate, check org access, and go through the store and the runner; they know
nothing of HTTP or of the seeds' envelopes.
"""
