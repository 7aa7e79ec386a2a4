from services.identity.service import DEFINITION
from services.platform.server import main

main(DEFINITION)
