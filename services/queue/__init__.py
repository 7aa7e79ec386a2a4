"""The queue twin: each line, its honest posted wait and forecast, ride status, and
virtual queues and return times."""
