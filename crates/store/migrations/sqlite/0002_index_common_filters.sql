-- Indexes for the filters and sort keys a provider uses most. Each leads with the partner
-- tenant, as every query does, and (the table being WITHOUT ROWID) ends with the key `id`, so
-- an equality filter returns its rows in key order and a sorted listing resumes from a
-- skiptoken by seeking, not by scanning.
CREATE INDEX aggregated_policy_compliance_by_tenant
    ON aggregated_policy_compliance (partner_tenant_id, tenant_id);
CREATE INDEX aggregated_policy_compliance_by_policy
    ON aggregated_policy_compliance (partner_tenant_id, compliance_policy_id);
CREATE INDEX aggregated_policy_compliance_by_platform
    ON aggregated_policy_compliance (partner_tenant_id, compliance_policy_platform);
CREATE INDEX aggregated_policy_compliance_by_last_refreshed
    ON aggregated_policy_compliance (partner_tenant_id, last_refreshed_ticks);
CREATE INDEX aggregated_policy_compliance_by_compliant
    ON aggregated_policy_compliance (partner_tenant_id, number_of_compliant_devices);
CREATE INDEX aggregated_policy_compliance_by_non_compliant
    ON aggregated_policy_compliance (partner_tenant_id, number_of_non_compliant_devices);
CREATE INDEX aggregated_policy_compliance_by_error
    ON aggregated_policy_compliance (partner_tenant_id, number_of_error_devices);
