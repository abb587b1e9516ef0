"""Run one SQL statement on PostgreSQL (psycopg) or MySQL/MariaDB (PyMySQL), an
independent client, and print the rows it returns as a JSON list of objects (values that
JSON has no type for, such as timestamps, as text). Statements are run in autocommit.

usage: sql_query.py URL SQL [PARAM...]
  URL: postgresql://user@host:port/db or mysql://user:password@host:port/db
"""
import json
import sys
from urllib.parse import unquote, urlparse

url, sql, params = sys.argv[1], sys.argv[2], sys.argv[3:]

if url.startswith(("postgresql://", "postgres://")):
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    cur = conn.execute(sql, params or None)
else:
    import pymysql

    u = urlparse(url)
    conn = pymysql.connect(
        host=u.hostname or "127.0.0.1",
        port=u.port or 3306,
        user=unquote(u.username or "root"),
        password=unquote(u.password or ""),
        database=(u.path or "/").lstrip("/") or None,
        autocommit=True,
        charset="utf8mb4",
    )
    cur = conn.cursor()
    cur.execute(sql, params or None)

rows = []
if cur.description:
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, row)) for row in cur.fetchall()]
print(json.dumps(rows, default=str))
