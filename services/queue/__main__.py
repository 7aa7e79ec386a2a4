from services.platform.server import main
from services.queue.service import DEFINITION

main(DEFINITION)
