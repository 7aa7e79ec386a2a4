from services.access.service import DEFINITION
from services.platform.server import main

main(DEFINITION)
