from services.ingest.app import run

run()
