"""The identity service: guests, parties, wristbands, consent, and credentials."""
