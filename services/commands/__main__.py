from services.commands.app import run

run()
