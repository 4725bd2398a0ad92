-- Internal objects live in their own schema (names starting with pg_ are
-- reserved); the user-facing API is created in @extschema@ (public by
-- default) so it is callable unqualified with the default search_path.
CREATE SCHEMA pgfollower;
REVOKE ALL ON SCHEMA pgfollower FROM PUBLIC;
COMMENT ON SCHEMA pgfollower IS 'pg_follower_py internals: subscriptions, status, capture';
