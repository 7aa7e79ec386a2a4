"""The fault suite (issue 11): a simulated day under faults, then an audit."""
