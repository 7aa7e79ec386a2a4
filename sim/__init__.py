"""The simulated world: one venue day of guests, and the report card of the twin.

The world is the ground truth; the services are the twin. The world talks to the
suite only as the venue's real devices and apps would (sim.suite), and keeps what
really happened to itself (sim.truth) until the report compares the two.
"""
