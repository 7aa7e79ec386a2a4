"""The itinerary service: each party's day plan and the nudges that help them follow it."""
