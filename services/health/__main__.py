from services.health.app import run

run()
