"""Every use of a private or undocumented part of another library, fenced here with why and the versions checked.

- `executor`: graphql-core's execution internals and Strawberry's resolver markers (the plain-field executor).
- `strawberry_parts`: Strawberry's resolve info behind `Info`, its stream-transport hook, its refusal texts.
- `agno_parts`: Agno's table helpers of its SQL databases and its set of background-run tasks.

`tests/test_compat.py` asserts each assumed part is there with the shape used, so an upgrade that moves one fails
in one named test. After `make lock`, `make test` tells whether the new versions hold.
"""
