-- Indexes for the filters and sort keys a provider uses most, as in the SQLite schema. Each
-- leads with the partner tenant, as every query does, and ends with the key `id`, so an
-- equality filter returns its rows in key order and a sorted listing resumes by seeking.
CREATE INDEX aggregated_policy_compliance_by_tenant
    ON aggregated_policy_compliance (partner_tenant_id, tenant_id, id);
CREATE INDEX aggregated_policy_compliance_by_policy
    ON aggregated_policy_compliance (partner_tenant_id, compliance_policy_id, id);
CREATE INDEX aggregated_policy_compliance_by_platform
    ON aggregated_policy_compliance (partner_tenant_id, compliance_policy_platform, id);
CREATE INDEX aggregated_policy_compliance_by_last_refreshed
    ON aggregated_policy_compliance (partner_tenant_id, last_refreshed_ticks, id);
CREATE INDEX aggregated_policy_compliance_by_compliant
    ON aggregated_policy_compliance (partner_tenant_id, number_of_compliant_devices, id);
CREATE INDEX aggregated_policy_compliance_by_non_compliant
    ON aggregated_policy_compliance (partner_tenant_id, number_of_non_compliant_devices, id);
CREATE INDEX aggregated_policy_compliance_by_error
    ON aggregated_policy_compliance (partner_tenant_id, number_of_error_devices, id);
