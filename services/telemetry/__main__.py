from services.telemetry.app import run

run()
