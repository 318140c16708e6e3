"""Local Kafka broker and PostgreSQL server for development, tests and CI.

Standard library only: `deploy/local/kafka` and `deploy/local/postgres` run with the system
Python before the project's virtual environment exists.
"""
