-- The functions the query compiler calls for OData's operators and functions, with the same
-- meaning as the ones the SQLite store registers from Rust (src/sqlite/functions.rs).
--
-- A function that cannot give a value for its arguments (overflow, division by zero, a
-- date-time outside the years 0001 to 9999) raises SQLSTATE BQ400 with a message for the
-- client; the store turns that into StoreError::InvalidQuery. Every function returns null for
-- a null argument (STRICT).
--
-- Known differences from SQLite:
-- - odata_matches uses PostgreSQL's regular expressions (ARE), not Rust's regex crate. The
--   binder has already checked the pattern with Rust's syntax; the two agree on common
--   patterns but differ in some escapes and classes. An invalid pattern with a null text
--   gives null here (STRICT), where SQLite rejects it.
-- - odata_tolower and odata_toupper use ICU's full case mapping (collation "und-x-icu"), which
--   agrees with Rust's case mapping except where their Unicode versions differ. This needs a
--   PostgreSQL server built with ICU, as the Debian and official packages are.

-- Checked Int64 arithmetic.
CREATE FUNCTION odata_checked(result numeric, operator text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    IF result < -9223372036854775808 OR result > 9223372036854775807 THEN
        RAISE EXCEPTION USING ERRCODE = 'BQ400',
            MESSAGE = format('The result of ''%s'' is outside the range of Edm.Int64.', operator);
    END IF;
    RETURN result::bigint;
END $$;

CREATE FUNCTION odata_divisor(divisor bigint, operator text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    IF divisor = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'BQ400',
            MESSAGE = format('Division by zero in ''%s''.', operator);
    END IF;
    RETURN divisor;
END $$;

CREATE FUNCTION odata_add(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN odata_checked(a::numeric + b::numeric, 'add');

CREATE FUNCTION odata_sub(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN odata_checked(a::numeric - b::numeric, 'sub');

CREATE FUNCTION odata_mul(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN odata_checked(a::numeric * b::numeric, 'mul');

-- Integer division truncates toward zero, as Rust's does, and numeric's div() is exact where
-- the / operator rounds to a finite scale. i64::MIN div -1 overflows.
CREATE FUNCTION odata_div(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN odata_checked(div(a::numeric, odata_divisor(b, 'div')::numeric), 'div');

-- The remainder takes the dividend's sign; i64::MIN mod -1 is 0, as PostgreSQL gives.
CREATE FUNCTION odata_mod(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN a % odata_divisor(b, 'mod');

CREATE FUNCTION odata_neg(a bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN odata_checked(-(a::numeric), '-');

-- divby: the fraction n / d as a double, and the exact comparison of two such fractions.
CREATE FUNCTION odata_divby(n bigint, d bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN n::double precision / odata_divisor(d, 'divby')::double precision;

CREATE FUNCTION odata_ratio_cmp(a bigint, b bigint, c bigint, d bigint) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    an numeric := a;
    bn numeric := odata_divisor(b, 'divby');
    cn numeric := c;
    dn numeric := odata_divisor(d, 'divby');
BEGIN
    -- With both denominators made positive, a/b < c/d exactly when a*d < c*b.
    IF bn < 0 THEN an := -an; bn := -bn; END IF;
    IF dn < 0 THEN cn := -cn; dn := -dn; END IF;
    RETURN sign(an * dn - cn * bn)::bigint;
END $$;

-- A double constant written as text; 9e999 and -9e999 stand for the infinities.
CREATE FUNCTION odata_real(value text) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE value
    WHEN '9e999' THEN 'Infinity'::double precision
    WHEN '-9e999' THEN '-Infinity'::double precision
    ELSE value::double precision
END;

-- The sum of Int64 values, which PostgreSQL computes exactly as numeric, back in Int64.
CREATE FUNCTION odata_sum(total numeric) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    IF total < -9223372036854775808 OR total > 9223372036854775807 THEN
        RAISE EXCEPTION USING ERRCODE = 'BQ400',
            MESSAGE = 'An aggregated sum is outside the range of Edm.Int64.';
    END IF;
    RETURN total::bigint;
END $$;

CREATE FUNCTION odata_sum(total double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN total;

-- Strings, counted in Unicode scalar values (the database encoding is UTF-8).
CREATE FUNCTION odata_tolower(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN lower(value COLLATE "und-x-icu") COLLATE "C";

CREATE FUNCTION odata_toupper(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN upper(value COLLATE "und-x-icu") COLLATE "C";

CREATE FUNCTION odata_ascii_lower(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN translate(value, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');

-- Removes the characters with the Unicode White_Space property at both ends, as Rust's
-- str::trim does.
CREATE FUNCTION odata_trim(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN btrim(value, U&'\0009\000A\000B\000C\000D\0020\0085\00A0\1680\2000\2001\2002\2003\2004\2005\2006\2007\2008\2009\200A\2028\2029\202F\205F\3000');

CREATE FUNCTION odata_length(value text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN char_length(value);

CREATE FUNCTION odata_indexof(value text, needle text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN strpos(value, needle) - 1;

-- A negative start counts as 0; a start past the end or a negative length gives ''.
CREATE FUNCTION odata_substring(value text, start bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN substr(value, (least(greatest(start, 0), 2147483646) + 1)::integer);

CREATE FUNCTION odata_substring(value text, start bigint, length bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE WHEN length < 0 THEN ''
    ELSE substr(value, (least(greatest(start, 0), 2147483646) + 1)::integer,
                least(length, 2147483647)::integer)
END;

-- Plain substring tests: no character of the needle is a wildcard.
CREATE FUNCTION odata_contains(value text, needle text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN strpos(value, needle) > 0;

CREATE FUNCTION odata_startswith(value text, prefix text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN left(value, char_length(prefix)) = prefix COLLATE "C";

CREATE FUNCTION odata_endswith(value text, suffix text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN right(value, char_length(suffix)) = suffix COLLATE "C";

-- An unanchored search.
CREATE FUNCTION odata_matches(value text, pattern text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN value ~ pattern;

-- Date and time parts of an instant stored as ticks, in UTC. Every part checks that the
-- instant lies in the years 0001 to 9999, as in SQLite; the `0 * odata_day_number(…)` terms
-- are there only for that check.
CREATE FUNCTION odata_day_number(ticks bigint, function_name text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    day bigint := floor(ticks::numeric / 864000000000)::bigint;
BEGIN
    -- 0001-01-01 and 9999-12-31 counted from 1970-01-01.
    IF day < -719162 OR day > 2932896 THEN
        RAISE EXCEPTION USING ERRCODE = 'BQ400',
            MESSAGE = format('The date-time value given to ''%s'' is outside the years 0001 to 9999.', function_name);
    END IF;
    RETURN day;
END $$;

CREATE FUNCTION odata_time_of_day(ticks bigint, function_name text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN mod(mod(ticks, 864000000000) + 864000000000, 864000000000)
    + 0 * odata_day_number(ticks, function_name);

CREATE FUNCTION odata_year(ticks bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN extract(year FROM date '1970-01-01' + odata_day_number(ticks, 'year')::integer)::bigint;

CREATE FUNCTION odata_month(ticks bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN extract(month FROM date '1970-01-01' + odata_day_number(ticks, 'month')::integer)::bigint;

CREATE FUNCTION odata_day(ticks bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN extract(day FROM date '1970-01-01' + odata_day_number(ticks, 'day')::integer)::bigint;

CREATE FUNCTION odata_hour(ticks bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN odata_time_of_day(ticks, 'hour') / 36000000000;

CREATE FUNCTION odata_minute(ticks bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN odata_time_of_day(ticks, 'minute') / 600000000 % 60;

CREATE FUNCTION odata_second(ticks bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN odata_time_of_day(ticks, 'second') / 10000000 % 60;

CREATE FUNCTION odata_fraction(ticks bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN mod(mod(ticks, 10000000) + 10000000, 10000000)
    + 0 * odata_day_number(ticks, 'fractionalseconds');

CREATE FUNCTION odata_date(ticks bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN odata_day_number(ticks, 'date');

CREATE FUNCTION odata_time(ticks bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN odata_time_of_day(ticks, 'time');
