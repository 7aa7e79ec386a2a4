"""Location: readers and zones, ping ingest, each guest's place and trail, zone occupancy."""
