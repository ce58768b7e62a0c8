"""The production topology (scripts/prod.sh: nginx in front of gunicorn) over real sockets."""
