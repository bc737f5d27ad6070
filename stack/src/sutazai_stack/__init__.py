"""Run the whole platform on one machine (``make run``).

Each part of the infrastructure is resolved in this order: a configured URL; else a server already
answering on the standard port; else the embedded default started from its wheel. Then the local
model server, then the six services. Ctrl-C stops everything this process started and nothing else.
"""
