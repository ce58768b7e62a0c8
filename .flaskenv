# Read by the `flask` command (python-dotenv) and committed: defaults for the project's CLI.
# Your own settings go in .env (not committed; start from .env.example). Variables
# already set in your shell win over both files.
FLASK_APP=wsgi
# Reloader and debugger for a bare `flask run`; `make run` works without it.
# FLASK_DEBUG=1
