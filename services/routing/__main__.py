from services.platform.server import main
from services.routing.service import DEFINITION

main(DEFINITION)
