from services.firmware.app import run

run()
