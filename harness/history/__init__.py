"""History: the results store (SQLite embedded, PostgreSQL for a fleet) through SQLAlchemy Core.

`schema` holds the tables and the schema version, `migrations` upgrades older stores on open, `store` saves a run
in one transaction and answers the queries (runs, rows, same-config history, import/export by run_id).

May import: common/ only. Never imports measure, orchestrate, fleet, gate or cli, nor reports/.
"""
