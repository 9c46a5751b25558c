"""The HTTP API: one module of routes per API family, speaking each product's envelope.

Handlers read the request, call the family's service functions and shape the answer;
they hold no rules of their own.
"""
