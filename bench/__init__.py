"""Benchmarks: agno-graphql against Agno's AgentOS and against the limit (plain SQL, in-process runs).

`python -m bench` (or `make bench`) runs everything; `python -m bench --small` is the few-second
version the test suite runs. See BENCHMARKS.md for the scenarios and the latest numbers.
"""
