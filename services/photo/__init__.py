"""Photo: ride and park photos, linked to the guests in them, for the party to keep and buy."""
