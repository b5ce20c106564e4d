-- One table for every partner's entities, laid out as in the SQLite schema. The partner tenant
-- leads the key, so each partner's rows are contiguous in the key's index.
-- Every text column uses the "C" collation, which orders UTF-8 by code point, as SQLite's
-- BINARY collation does, so both stores sort and compare text identically.
CREATE TABLE aggregated_policy_compliance (
    partner_tenant_id TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    tenant_id TEXT COLLATE "C",
    tenant_display_name TEXT COLLATE "C",
    compliance_policy_id TEXT COLLATE "C",
    compliance_policy_name TEXT COLLATE "C",
    compliance_policy_type TEXT COLLATE "C",
    compliance_policy_platform TEXT COLLATE "C",
    number_of_compliant_devices BIGINT CHECK (number_of_compliant_devices >= 0),
    number_of_non_compliant_devices BIGINT CHECK (number_of_non_compliant_devices >= 0),
    number_of_error_devices BIGINT CHECK (number_of_error_devices >= 0),
    -- 100-nanosecond ticks since 1970-01-01T00:00:00Z, and the fractional digits to show.
    policy_modified_ticks BIGINT,
    policy_modified_digits SMALLINT CHECK (policy_modified_digits BETWEEN 0 AND 7),
    last_refreshed_ticks BIGINT,
    last_refreshed_digits SMALLINT CHECK (last_refreshed_digits BETWEEN 0 AND 7),
    version BIGINT NOT NULL CHECK (version >= 1),
    PRIMARY KEY (partner_tenant_id, id),
    CHECK ((policy_modified_ticks IS NULL) = (policy_modified_digits IS NULL)),
    CHECK ((last_refreshed_ticks IS NULL) = (last_refreshed_digits IS NULL))
);
