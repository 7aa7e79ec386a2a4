from services.photo.service import DEFINITION
from services.platform.server import main

main(DEFINITION)
