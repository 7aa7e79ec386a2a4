from services.location.service import DEFINITION
from services.platform.server import main

main(DEFINITION)
