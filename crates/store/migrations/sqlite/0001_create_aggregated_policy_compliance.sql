-- Mark the file as Beacon's ("BEAC" in ASCII), so that another program's database is refused.
PRAGMA application_id = 1111834947;

-- One table for every partner's entities. The partner tenant leads the key, so each partner's
-- rows are contiguous and in key order, which is the order of collection pages.
-- Text compares with SQLite's BINARY collation, which orders UTF-8 by code point.
CREATE TABLE aggregated_policy_compliance (
    partner_tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    tenant_id TEXT,
    tenant_display_name TEXT,
    compliance_policy_id TEXT,
    compliance_policy_name TEXT,
    compliance_policy_type TEXT,
    compliance_policy_platform TEXT,
    number_of_compliant_devices INTEGER CHECK (number_of_compliant_devices >= 0),
    number_of_non_compliant_devices INTEGER CHECK (number_of_non_compliant_devices >= 0),
    number_of_error_devices INTEGER CHECK (number_of_error_devices >= 0),
    -- 100-nanosecond ticks since 1970-01-01T00:00:00Z, and the fractional digits to show.
    policy_modified_ticks INTEGER,
    policy_modified_digits INTEGER CHECK (policy_modified_digits BETWEEN 0 AND 7),
    last_refreshed_ticks INTEGER,
    last_refreshed_digits INTEGER CHECK (last_refreshed_digits BETWEEN 0 AND 7),
    version INTEGER NOT NULL CHECK (version >= 1),
    PRIMARY KEY (partner_tenant_id, id),
    CHECK ((policy_modified_ticks IS NULL) = (policy_modified_digits IS NULL)),
    CHECK ((last_refreshed_ticks IS NULL) = (last_refreshed_digits IS NULL))
) STRICT, WITHOUT ROWID;
