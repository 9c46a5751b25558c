"""The HTTP boundary every API family shares: reading a request (its path, query, form or
JSON body, under one input rule), who is calling, the envelope machinery, paging, and
streaming a complete list. The families' routes (`schedd/families/*/routes.py`) and the
daemon's own routes (`schedd.api`) are built on it; it names no family.
"""
