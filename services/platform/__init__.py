"""What every service of the suite stands on.

Configuration, the gRPC server bootstrap, authentication, errors, telemetry, the
database pool and migrations, the venue clock and the event streams live here once,
so that each service folder holds only its own servicer, domain logic and store.
"""
