from services.itinerary.service import DEFINITION
from services.platform.server import main

main(DEFINITION)
