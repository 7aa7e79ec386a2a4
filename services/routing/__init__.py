"""Routing: the venue's walkway graph, routes (step-free, crowd-aware), the nearest
point of interest of a kind, and the itinerary optimizer."""
