"""Compare what two databases hold, as their catalogs and their rows say.

Reusable by any test that brings a schema to a downstream (DDL replay, the
initial copy): ``assert_same_database(pair)`` compares every user object's
definition, owner, privileges and comment, then every table's rows. Objects of
``pg_catalog``, ``information_schema``, ``pg_toast`` and the extension's own
``pgfollower`` schema are left out, so are OIDs (they differ between clusters).
"""

from __future__ import annotations

from typing import Any

from conftest import Node, Pair, text_rows

# ACLs are compared with NULL (the default) spelled out: pg_dump writes no
# GRANT for an explicit ACL equal to the default, and the two mean the same.

# Namespaces whose objects are not the user's.
_SYSTEM = "('pg_catalog', 'information_schema', 'pg_toast', 'pgfollower')"


def _user(nsp: str) -> str:
    """A condition keeping objects of user namespaces (``nsp`` is a namespace oid)."""
    return f"(SELECT nspname FROM pg_namespace WHERE oid = {nsp}) NOT IN {_SYSTEM}" + (
        f" AND (SELECT nspname FROM pg_namespace WHERE oid = {nsp})"
        " !~ '^pg_(toast_)?temp_[0-9]+$'"  # sessions' temporary schemas
    )


CATALOG_QUERIES: dict[str, str] = {
    "schemas": f"""
        SELECT nspname, pg_get_userbyid(nspowner),
               coalesce(nspacl, acldefault('n', nspowner))::text
          FROM pg_namespace n
         WHERE {_user("n.oid")} ORDER BY 1""",
    "relations": f"""
        SELECT c.oid::regclass::text, c.relkind, c.relpersistence, c.relreplident,
               c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner),
               coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char",
                                         c.relowner))::text,
               c.reloptions::text, pg_get_expr(c.relpartbound, c.oid),
               CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
               (SELECT array_agg(i.inhparent::regclass::text ORDER BY i.inhseqno)
                  FROM pg_inherits i WHERE i.inhrelid = c.oid),
               c.reloftype::regtype::text, c.relispopulated
          FROM pg_class c WHERE {_user("c.relnamespace")} AND c.relkind <> 'i'
         ORDER BY 1""",
    "columns": f"""
        SELECT a.attrelid::regclass::text, a.attnum, a.attname,
               format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
               a.attgenerated, pg_get_expr(d.adbin, d.adrelid), a.attislocal, a.attinhcount,
               (SELECT collname FROM pg_collation WHERE oid = a.attcollation),
               a.attacl::text, a.attstattarget, a.attstorage
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE {_user("c.relnamespace")} AND c.relkind <> 'i' AND a.attnum > 0
           AND NOT a.attisdropped
         ORDER BY 1, 2""",
    "constraints": f"""
        SELECT coalesce(conrelid::regclass::text, contypid::regtype::text), conname,
               pg_get_constraintdef(oid, true), condeferrable, condeferred, convalidated
          FROM pg_constraint WHERE {_user("connamespace")} ORDER BY 1, 2""",
    "indexes": f"""
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), i.indisclustered,
               i.indisreplident, c.reloptions::text
          FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE {_user("c.relnamespace")} ORDER BY 1""",
    "routines": f"""
        SELECT p.oid::regprocedure::text, p.prokind,
               CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END,
               pg_get_userbyid(p.proowner), coalesce(p.proacl, acldefault('f', p.proowner))::text
          FROM pg_proc p WHERE {_user("p.pronamespace")} ORDER BY 1""",
    "aggregates": f"""
        SELECT a.aggfnoid::regprocedure::text, a.aggkind, a.aggtransfn::text,
               a.aggfinalfn::text, a.aggcombinefn::text, format_type(a.aggtranstype, NULL),
               a.agginitval, a.aggsortop::regoperator::text
          FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
         WHERE {_user("p.pronamespace")} ORDER BY 1""",
    "views": f"""
        SELECT c.oid::regclass::text, pg_get_viewdef(c.oid, true)
          FROM pg_class c WHERE {_user("c.relnamespace")} AND c.relkind IN ('v', 'm')
         ORDER BY 1""",
    "triggers": f"""
        SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid, true), t.tgenabled
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE {_user("c.relnamespace")} AND NOT t.tgisinternal ORDER BY 1, 2""",
    "rules": f"""
        SELECT r.ev_class::regclass::text, r.rulename, pg_get_ruledef(r.oid, true), r.ev_enabled
          FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
         WHERE {_user("c.relnamespace")} AND r.rulename <> '_RETURN' ORDER BY 1, 2""",
    "policies": f"""
        SELECT p.polrelid::regclass::text, p.polname, p.polcmd, p.polpermissive,
               (SELECT array_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END
                                 ORDER BY 1) FROM unnest(p.polroles) r),
               pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
          FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
         WHERE {_user("c.relnamespace")} ORDER BY 1, 2""",
    "types": f"""
        SELECT t.oid::regtype::text, t.typtype, format_type(t.typbasetype, t.typtypmod),
               t.typnotnull, t.typdefault, pg_get_userbyid(t.typowner),
               coalesce(t.typacl, acldefault('T', t.typowner))::text,
               (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e
                 WHERE e.enumtypid = t.oid)
          FROM pg_type t WHERE {_user("t.typnamespace")} AND t.typtype IN ('e', 'c', 'd', 'r', 'm')
           AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
         ORDER BY 1""",
    "sequences": f"""
        SELECT s.seqrelid::regclass::text, format_type(s.seqtypid, NULL), s.seqstart,
               s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle
          FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
         WHERE {_user("c.relnamespace")} ORDER BY 1""",
    "default_privileges": """
        SELECT pg_get_userbyid(d.defaclrole),
               (SELECT nspname FROM pg_namespace WHERE oid = d.defaclnamespace),
               d.defaclobjtype, d.defaclacl::text
          FROM pg_default_acl d ORDER BY 1, 2, 3""",
    "extensions": """
        SELECT e.extname, e.extversion, e.extnamespace::regnamespace::text
          FROM pg_extension e ORDER BY 1""",
    "comments": """
        SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
          FROM pg_description d
         WHERE d.objoid >= 16384 AND pg_describe_object(d.classoid, d.objoid, d.objsubid)
               NOT LIKE '%pgfollower%'
         ORDER BY 1""",
    # The rest by what PostgreSQL calls them: operators, classes, families, casts,
    # collations, conversions, text search, statistics, foreign-data objects.
    "other_objects": """
        SELECT pg_describe_object(classid, objid, 0), owner
          FROM (SELECT 'pg_operator'::regclass, oid, pg_get_userbyid(oprowner)
                  FROM pg_operator WHERE oid >= 16384
                UNION ALL SELECT 'pg_opclass'::regclass, oid, pg_get_userbyid(opcowner)
                  FROM pg_opclass WHERE oid >= 16384
                UNION ALL SELECT 'pg_opfamily'::regclass, oid, pg_get_userbyid(opfowner)
                  FROM pg_opfamily WHERE oid >= 16384
                UNION ALL SELECT 'pg_cast'::regclass, oid, NULL FROM pg_cast WHERE oid >= 16384
                UNION ALL SELECT 'pg_collation'::regclass, oid, pg_get_userbyid(collowner)
                  FROM pg_collation WHERE oid >= 16384
                UNION ALL SELECT 'pg_conversion'::regclass, oid, pg_get_userbyid(conowner)
                  FROM pg_conversion WHERE oid >= 16384
                UNION ALL SELECT 'pg_ts_config'::regclass, oid, pg_get_userbyid(cfgowner)
                  FROM pg_ts_config WHERE oid >= 16384
                UNION ALL SELECT 'pg_ts_dict'::regclass, oid, pg_get_userbyid(dictowner)
                  FROM pg_ts_dict WHERE oid >= 16384
                UNION ALL SELECT 'pg_statistic_ext'::regclass, oid, pg_get_statisticsobjdef(oid)
                  FROM pg_statistic_ext
                UNION ALL SELECT 'pg_foreign_server'::regclass, oid,
                       pg_get_userbyid(srvowner) || ' ' || coalesce(srvoptions::text, '')
                  FROM pg_foreign_server
                UNION ALL SELECT 'pg_publication'::regclass, oid, pg_get_userbyid(pubowner)
                  FROM pg_publication WHERE pubname <> 'pg_follower_py'
               ) o(classid, objid, owner)
         ORDER BY 1, 2""",
}


def catalog(node: Node) -> dict[str, list[tuple[Any, ...]]]:
    """What ``node`` holds, by catalog."""
    return {name: node.rows(query) for name, query in CATALOG_QUERIES.items()}


def tables(node: Node) -> list[str]:
    """The user tables holding rows (no partitioned parents), by qualified name."""
    return [
        str(r[0])
        for r in node.rows(
            f"""SELECT c.oid::regclass::text FROM pg_class c
                 WHERE {_user("c.relnamespace")} AND c.relkind = 'r'
                   AND c.relpersistence = 'p' ORDER BY 1"""
        )
    ]


def contents(node: Node) -> dict[str, list[tuple[str | None, ...]]]:
    """Every user table's rows in text form, sorted."""
    return {t: text_rows(node, f"SELECT t::text FROM {t} t ORDER BY 1") for t in tables(node)}


def assert_same_catalog(pair: Pair) -> None:
    """The downstream's objects are the upstream's, kind by kind."""
    up, down = catalog(pair.up), catalog(pair.down)
    for name in CATALOG_QUERIES:
        only_up = [r for r in up[name] if r not in down[name]]
        only_down = [r for r in down[name] if r not in up[name]]
        assert down[name] == up[name], (
            f"{name}: upstream only {only_up}, downstream only {only_down}"
        )


def assert_same_database(pair: Pair) -> None:
    """Same objects, then same rows in every table."""
    assert_same_catalog(pair)
    up, down = contents(pair.up), contents(pair.down)
    assert list(down) == list(up)
    for table in up:
        assert down[table] == up[table], table
