"""A real schema, loaded as a user would: pagila's pg_dump script through psql
into a followed upstream, then more DDL of every kind and rows; the downstream
must hold the same objects (catalog by catalog) and the same rows."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from catalogs import assert_same_database, catalog
from conftest import Node, Pair, text_rows, wait_until
from pg_follower.ops.cluster import bindir

PAGILA = Path(__file__).parent.parent / "fixtures" / "pagila" / "pagila-schema.sql"
# Roles are cluster-wide and not replicated: the test makes them on both sides.
ROLES = ("pagila_owner", "pagila_reader")

# What pagila lacks, in one more psql script: owners, grants, default
# privileges, comments, row security, rules, trigger states, statistics,
# collations, text search, extensions, operators, casts, procedures,
# foreign-data objects and a materialized view of our own.
MORE_DDL = """
ALTER TABLE public.film OWNER TO pagila_owner;
ALTER FUNCTION public.film_in_stock(integer, integer) OWNER TO pagila_owner;
GRANT USAGE ON SCHEMA public TO pagila_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO pagila_reader;
REVOKE SELECT ON public.staff FROM pagila_reader;
GRANT SELECT (staff_id, first_name, last_name) ON public.staff TO pagila_reader;
GRANT EXECUTE ON FUNCTION public.film_in_stock(integer, integer) TO pagila_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO pagila_reader;
COMMENT ON TABLE public.film IS 'Films; each rented out as inventory';
COMMENT ON COLUMN public.film.rating IS 'MPAA rating';
COMMENT ON FUNCTION public.film_in_stock(integer, integer) IS 'copies of a film in a store';
ALTER TABLE public.customer ENABLE ROW LEVEL SECURITY;
CREATE POLICY customer_store_one ON public.customer FOR SELECT TO pagila_reader
    USING (store_id = 1);
CREATE RULE staff_list_no_delete AS ON DELETE TO public.staff_list DO INSTEAD NOTHING;
ALTER TABLE public.language DISABLE TRIGGER last_updated;
CREATE STATISTICS public.film_rating_duration (dependencies)
    ON rating, rental_duration FROM public.film;
CREATE COLLATION public.bytewise (locale = 'C');
CREATE TEXT SEARCH CONFIGURATION public.pagila_english (COPY = pg_catalog.english);
CREATE EXTENSION hstore WITH SCHEMA public;
ALTER TABLE public.film ADD COLUMN attributes public.hstore;
CREATE FUNCTION public.rating_rank(public.mpaa_rating) RETURNS integer
    LANGUAGE sql IMMUTABLE
    RETURN array_position(enum_range(NULL::public.mpaa_rating), $1);
CREATE CAST (public.mpaa_rating AS integer) WITH FUNCTION public.rating_rank(public.mpaa_rating);
CREATE OPERATOR public.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_catalog.texteq,
    COMMUTATOR = OPERATOR(public.===));
CREATE PROCEDURE public.touch_store(p_store_id integer) LANGUAGE sql
BEGIN ATOMIC
    UPDATE public.store SET last_update = now() WHERE store_id = p_store_id;
END;
CREATE EXTENSION postgres_fdw;
CREATE SERVER pagila_remote FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'nowhere');
CREATE USER MAPPING FOR pagila_reader SERVER pagila_remote
    OPTIONS (user 'reader', password 'pagila-secret');
CREATE FOREIGN TABLE public.remote_film (film_id integer) SERVER pagila_remote;
CREATE MATERIALIZED VIEW public.film_ratings AS
    SELECT rating, count(*) AS films FROM public.film GROUP BY rating;
CREATE UNIQUE INDEX film_ratings_rating ON public.film_ratings (rating);
"""

# Rows: generated (pagila's data file is not vendored), through every table.
ROWS = """
INSERT INTO public.country (country) SELECT 'country ' || n FROM generate_series(1, 5) n;
INSERT INTO public.city (city, country_id)
    SELECT 'city ' || n, 1 + n % 5 FROM generate_series(1, 10) n;
INSERT INTO public.address (address, district, city_id, postal_code, phone)
    SELECT n || ' Main Street', 'district', 1 + n % 10, lpad(n::text, 5, '0'), '555-' || n
      FROM generate_series(1, 20) n;
INSERT INTO public.language (name) VALUES ('English'), ('Italian'), ('Japanese');
INSERT INTO public.category (name) SELECT 'category ' || n FROM generate_series(1, 4) n;
INSERT INTO public.actor (first_name, last_name)
    SELECT 'First' || n, 'Last' || n FROM generate_series(1, 30) n;
INSERT INTO public.film (title, description, release_year, language_id, rating,
                         special_features, attributes)
    SELECT 'Film ' || n, 'A story of ' || n || ' rentals', 1990 + n % 30, 1 + n % 3,
           (enum_range(NULL::public.mpaa_rating))[1 + n % 5], ARRAY['Trailers'],
           public.hstore('n', n::text)
      FROM generate_series(1, 40) n;
INSERT INTO public.film_actor (actor_id, film_id)
    SELECT 1 + n % 30, n FROM generate_series(1, 40) n;
INSERT INTO public.film_category (film_id, category_id)
    SELECT n, 1 + n % 4 FROM generate_series(1, 40) n;
-- store and staff reference each other: load them as pg_dump's data does
BEGIN;
SET LOCAL session_replication_role = replica;
INSERT INTO public.store (manager_staff_id, address_id) VALUES (1, 1), (2, 2);
INSERT INTO public.staff (first_name, last_name, address_id, store_id, username, picture)
    VALUES ('Mike', 'Hillyer', 3, 1, 'mike', '\\x0102'), ('Jon', 'Stephens', 4, 2, 'jon', NULL);
COMMIT;
INSERT INTO public.customer (store_id, first_name, last_name, email, address_id, active)
    SELECT 1 + n % 2, 'Cust' || n, 'Omer' || n, 'c' || n || '@example.org', 5 + n % 15, 1
      FROM generate_series(1, 25) n;
INSERT INTO public.inventory (film_id, store_id)
    SELECT 1 + n % 40, 1 + n % 2 FROM generate_series(1, 80) n;
INSERT INTO public.rental (rental_date, inventory_id, customer_id, staff_id)
    SELECT timestamptz '2022-01-03 10:00+00' + n * interval '1 day 1 hour', 1 + n % 80,
           1 + n % 25, 1 + n % 2
      FROM generate_series(1, 200) n;
INSERT INTO public.payment (customer_id, staff_id, rental_id, amount, payment_date)
    SELECT r.customer_id, r.staff_id, r.rental_id, 0.99 + r.rental_id % 5, r.rental_date
      FROM public.rental r;
UPDATE public.rental SET return_date = rental_date + interval '3 days'
 WHERE rental_id % 3 = 0;
UPDATE public.film SET rental_rate = 2.99 WHERE film_id % 7 = 0;
DELETE FROM public.payment WHERE payment_id % 11 = 0;
REFRESH MATERIALIZED VIEW public.rental_by_category;
REFRESH MATERIALIZED VIEW CONCURRENTLY public.film_ratings;
"""


def psql_script(node: Node, script: str | Path) -> None:
    """Run a script with psql (the client a user loads a dump with), stopping at an error."""
    argv = [str(bindir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", node.dsn]
    argv += ["-f", str(script)] if isinstance(script, Path) else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    res = subprocess.run(
        argv,
        input=None if isinstance(script, Path) else script,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, f"{str(script)[:80]}: {res.stderr}"


@pytest.fixture
def roles(pair: Pair) -> None:
    for node in (pair.up, pair.down):
        for role in ROLES:
            if not node.scalar("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]):
                node.execute(f"CREATE ROLE {role}")


def matviews(node: Node) -> list[tuple[str | None, ...]]:
    return text_rows(
        node,
        "SELECT 'rental_by_category', t::text FROM public.rental_by_category t"
        " UNION ALL SELECT 'film_ratings', t::text FROM public.film_ratings t ORDER BY 1, 2",
    )


@pytest.mark.usefixtures("roles")
def test_pagila_loaded_with_psql_while_followed(pair: Pair) -> None:
    pair.follow()
    psql_script(pair.up, PAGILA)
    psql_script(pair.up, MORE_DDL)
    psql_script(pair.up, ROWS)
    pair.caught_up(60)
    status = pair.status()
    assert status["state"] == "streaming" and status["last_error"] is None, status
    assert_same_database(pair)
    # not a comparison of empty lists: every kind is there
    held = catalog(pair.up)
    assert not [kind for kind, rows in held.items() if not rows]
    assert len(held["routines"]) > 10 and len(held["triggers"]) > 10, held["routines"]
    assert matviews(pair.down) == matviews(pair.up)
    assert len(matviews(pair.up)) > 4
    # the replicated objects work downstream as upstream
    query = "SELECT count(*) FROM public.film_in_stock(1, 2)"
    assert pair.down.scalar(query) == pair.up.scalar(query)
    assert pair.down.scalar("SELECT 'PG'::public.mpaa_rating::integer") == 2
    # the password of the user mapping did not leak into the worker's log
    log = Path(pair.down.cluster.datadir) / "pg_follower_py.log"
    assert "pagila-secret" not in (log.read_text(errors="replace") if log.exists() else "")
    # dropping each kind replicates too
    psql_script(
        pair.up,
        """
        DROP USER MAPPING FOR pagila_reader SERVER pagila_remote;
        DROP SERVER pagila_remote CASCADE;
        DROP EXTENSION postgres_fdw;
        DROP PROCEDURE public.touch_store(integer);
        DROP OPERATOR public.=== (text, text);
        DROP CAST (public.mpaa_rating AS integer);
        DROP FUNCTION public.rating_rank(public.mpaa_rating);
        DROP TEXT SEARCH CONFIGURATION public.pagila_english;
        DROP COLLATION public.bytewise;
        DROP STATISTICS public.film_rating_duration;
        DROP RULE staff_list_no_delete ON public.staff_list;
        DROP POLICY customer_store_one ON public.customer;
        DROP TRIGGER last_updated ON public.film;
        DROP MATERIALIZED VIEW public.film_ratings;
        DROP VIEW public.actor_info;
        DROP AGGREGATE public.group_concat(text) CASCADE;
        """,
    )
    pair.caught_up(30)
    assert pair.status()["last_error"] is None, pair.status()
    assert_same_database(pair)


def test_a_refresh_that_reads_what_the_downstream_lacks_stops_there(pair: Pair) -> None:
    """An unlogged table's rows stay upstream: the downstream REFRESH would give
    other rows, so the worker stops there instead of diverging."""
    pair.follow()
    pair.up.execute("CREATE UNLOGGED TABLE scratch (v int)")
    pair.up.execute("CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS n FROM scratch")
    pair.up.execute("INSERT INTO scratch VALUES (1), (2)")
    pair.up.execute("REFRESH MATERIALIZED VIEW mv")
    error = wait_until(lambda: pair.status()["last_error"], 30, "the apply error")
    assert error.startswith(
        "REFRESH MATERIALIZED VIEW gave public.mv other rows downstream than upstream: its"
        " query read rows the upstream had not seen yet"
    ), error
    assert "skip_transaction()" in error
    assert pair.down.scalar("SELECT n FROM mv") == 0
    lsn = pair.status()["error_lsn"]
    pair.down.execute("SELECT skip_transaction(%s)", [lsn])
    pair.caught_up(30)


def test_what_the_downstream_lacks_is_an_apply_error_until_it_is_there(pair: Pair) -> None:
    role = "only_up_" + pair.up.dbname  # a role per test: roles are cluster-wide
    pair.up.execute(f"CREATE ROLE {role}")
    pair.follow()
    pair.up.execute("CREATE TABLE t (id int PRIMARY KEY)")
    pair.up.execute(f"GRANT SELECT ON t TO {role}")
    pair.up.execute(
        "CREATE EXTENSION postgres_fdw;"
        " CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'x')"
    )
    error = wait_until(lambda: pair.status()["last_error"], 30, "the apply error")
    assert f'role "{role}" does not exist' in error, error
    assert "create it downstream" in error and "the worker retries" in error
    pair.down.execute(f"CREATE ROLE {role}")
    pair.caught_up(60)
    assert pair.down.scalar("SELECT has_table_privilege(%s, 't', 'SELECT')", [role])
    # a secret in a statement that fails downstream stays out of every report
    pair.up.execute(
        f"CREATE USER MAPPING FOR {role} SERVER s OPTIONS (user 'u', password 'hush-secret')"
    )
    pair.caught_up(30)
    pair.down.execute(f"DROP USER MAPPING FOR {role} SERVER s")
    pair.up.execute(f"ALTER USER MAPPING FOR {role} SERVER s OPTIONS (SET password 'x2-secret')")
    error = wait_until(
        lambda: (
            "user mapping" in (pair.status()["last_error"] or "") and pair.status()["last_error"]
        ),
        30,
        "the apply error",
    )
    status = pair.status()
    assert "user mapping" in error and "does not exist" in error, error
    assert "hush-secret" not in str(status) and "x2-secret" not in str(status), status
    assert status["error_statement"] == (
        f"ALTER USER MAPPING FOR {role} SERVER s OPTIONS (SET password '***')"
    )
    log = Path(pair.down.cluster.datadir) / "pg_follower_py.log"
    assert "-secret" not in log.read_text(errors="replace")
    assert "x2-secret" not in pair.down.cluster.log_tail(500)


@pytest.mark.usefixtures("roles")
def test_pagila_existing_before_start_follow_comes_through_the_initial_copy(pair: Pair) -> None:
    """The same schema and rows, there before anyone follows: the initial copy
    brings the same objects, owners, privileges, comments, policies and rows."""
    psql_script(pair.up, PAGILA)
    psql_script(pair.up, MORE_DDL)
    psql_script(pair.up, ROWS)
    pair.follow(copy_data=True)
    pair.caught_up(60)
    status = pair.status()
    assert status["state"] == "streaming" and status["last_error"] is None, status
    assert_same_database(pair)
    held = catalog(pair.up)
    assert not [kind for kind, rows in held.items() if not rows]
    assert matviews(pair.down) == matviews(pair.up)
    assert len(matviews(pair.up)) > 4
    # and it goes on streaming on top of the copy
    psql_script(pair.up, "UPDATE public.film SET rental_rate = 3.99 WHERE film_id % 5 = 0;")
    pair.caught_up(30)
    assert_same_database(pair)
