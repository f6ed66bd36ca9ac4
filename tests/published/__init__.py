"""Checks against PagerDuty's published OpenAPI documents (repository PagerDuty/api-schema).

The documents are not copied here: `rest_documented.py` and `events_documented.py` say, in
our own words and as small expectations, what the documents say about each call pdconnect
makes, each citing the document and the operation it comes from. The tests hold the sandbox's
answers and the product's requests to them.
"""
