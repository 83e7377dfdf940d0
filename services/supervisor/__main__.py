from services.supervisor.app import run

run()
