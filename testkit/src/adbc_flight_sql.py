"""A real Flight SQL client for fjord's tests, run by `fjord_core::testkit::flight_sql`: Apache
Arrow ADBC's Flight SQL driver (the Go driver behind `adbc-driver-flightsql`).

Reads one JSON object from stdin:
  {"uri": "grpc://127.0.0.1:PORT",
   "requests": [{"auth": {"user": U, "password": P} | {"header": "Bearer T"}
                          (+ "tls_root_certs": CA PEM, for grpc+tls://),
                 "sql": "SELECT ...", "params": [...]}            # a query (prepared if params)
              | {"auth": ..., "objects": true}                     # catalog metadata
              ...]}
and prints one JSON list with, per request, {"columns": [...], "rows": [[...], ...]} or
{"error": "<the driver's message>"}.
"""

import json
import sys

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql


def connect(uri, auth):
    if "header" in auth:
        kwargs = {adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: auth["header"]}
    else:
        kwargs = {"username": auth["user"], "password": auth["password"]}
    if "tls_root_certs" in auth:
        # grpc+tls:// URIs: trust this CA (PEM text)
        kwargs[adbc_driver_flightsql.DatabaseOptions.TLS_ROOT_CERTS.value] = auth["tls_root_certs"]
    return flight_sql.connect(uri, db_kwargs=kwargs)


def run(uri, request):
    with connect(uri, request["auth"]) as conn:
        if request.get("objects"):
            objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
            tables = sorted(
                f'{c["catalog_name"]}.{s["db_schema_name"]}.{t["table_name"]}'
                for c in objects
                for s in c["catalog_db_schemas"] or []
                for t in s["db_schema_tables"] or []
            )
            schema = conn.adbc_get_table_schema("readings", catalog_filter="fjord", db_schema_filter="public")
            return {"tables": tables, "readings_columns": schema.names}
        with conn.cursor() as cur:
            params = request.get("params")
            cur.execute(request["sql"], tuple(params) if params is not None else None)
            table = cur.fetch_arrow_table()
            return {
                "columns": table.column_names,
                "rows": [list(r.values()) for r in table.to_pylist()],
            }


def main():
    job = json.load(sys.stdin)
    out = []
    for request in job["requests"]:
        try:
            out.append(run(job["uri"], request))
        except Exception as e:  # the driver's error is what the test checks
            out.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
