//! The entity model: one entity type, `aggregatedPolicyCompliance`, exposed through two views.
//!
//! Microsoft first documented this resource at `/aggregatedPolicyCompliances` with the property
//! names `organizationId` and `organizationDisplayName` (the seed view) and later shipped it at
//! `/tenantRelationships/managedTenants/aggregatedPolicyCompliances` with `tenantId` and
//! `tenantDisplayName` (the Graph view). Both views name the same stored properties; a
//! [`Property`] is the stored property and [`Property::name`] gives its name in a view.

use std::fmt;

/// The EDM primitive types that the entity's properties use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdmType {
    /// `Edm.String`.
    String,
    /// `Edm.Int64`: a signed 64-bit integer. Beacon's counters only take values from 0 up.
    Int64,
    /// `Edm.DateTimeOffset`: an instant with up to 7 fractional second digits.
    DateTimeOffset,
}

impl EdmType {
    /// Returns the qualified EDM name, such as `Edm.Int64`.
    pub fn name(self) -> &'static str {
        match self {
            EdmType::String => "Edm.String",
            EdmType::Int64 => "Edm.Int64",
            EdmType::DateTimeOffset => "Edm.DateTimeOffset",
        }
    }
}

/// One of the two URL views over the same stored entities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    /// `/aggregatedPolicyCompliances` with the `organization…` property names. Creating through
    /// this view requires every property but `id`.
    Seed,
    /// `/tenantRelationships/managedTenants/aggregatedPolicyCompliances` with the `tenant…`
    /// property names. Every property but `id` is optional and nullable here.
    Graph,
}

impl View {
    /// Both views, in a fixed order.
    pub const ALL: [View; 2] = [View::Seed, View::Graph];

    /// Returns the entity set's path below the service root, without leading or trailing
    /// slash.
    pub fn collection_path(self) -> &'static str {
        match self {
            View::Seed => "aggregatedPolicyCompliances",
            View::Graph => "tenantRelationships/managedTenants/aggregatedPolicyCompliances",
        }
    }

    /// Returns the qualified name of the entity type in this view.
    pub fn type_name(self) -> &'static str {
        match self {
            View::Seed => "microsoft.management.services.api.aggregatedPolicyCompliance",
            View::Graph => "microsoft.graph.managedTenants.aggregatedPolicyCompliance",
        }
    }

    /// Whether a create through this view must give a non-null value for `property`.
    pub fn requires_on_create(self, property: Property) -> bool {
        match self {
            View::Seed => property != Property::Id,
            View::Graph => false,
        }
    }

    /// Finds the property that this view calls `name`; property names are case-sensitive.
    pub fn property(self, name: &str) -> Option<Property> {
        Property::ALL.into_iter().find(|p| p.name(self) == name)
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            View::Seed => "seed",
            View::Graph => "graph",
        })
    }
}

/// A structural property of `aggregatedPolicyCompliance`, independent of the view naming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Property {
    /// The key.
    Id,
    /// The customer tenant (`organizationId` in the seed view, `tenantId` in the Graph view).
    TenantId,
    /// The customer tenant's display name.
    TenantDisplayName,
    /// The compliance policy's id.
    CompliancePolicyId,
    /// The compliance policy's display name.
    CompliancePolicyName,
    /// The kind of policy, such as `deviceCompliancePolicy`.
    CompliancePolicyType,
    /// The device platform the policy applies to, such as `windows10AndLater`.
    CompliancePolicyPlatform,
    /// How many devices are compliant.
    NumberOfCompliantDevices,
    /// How many devices are not compliant.
    NumberOfNonCompliantDevices,
    /// How many devices reported an error evaluating the policy.
    NumberOfErrorDevices,
    /// When the policy was last modified.
    PolicyModifiedDateTime,
    /// When these counts were last refreshed.
    LastRefreshedDateTime,
}

/// The number of properties other than the key.
pub const FIELD_COUNT: usize = 11;

impl Property {
    /// Every property, key first, in the order the entity type declares them.
    pub const ALL: [Property; 12] = [
        Property::Id,
        Property::TenantId,
        Property::TenantDisplayName,
        Property::CompliancePolicyId,
        Property::CompliancePolicyName,
        Property::CompliancePolicyType,
        Property::CompliancePolicyPlatform,
        Property::NumberOfCompliantDevices,
        Property::NumberOfNonCompliantDevices,
        Property::NumberOfErrorDevices,
        Property::PolicyModifiedDateTime,
        Property::LastRefreshedDateTime,
    ];

    /// Every property but the key, in declaration order; a field's position here is its
    /// [`Property::field_index`].
    pub const FIELDS: [Property; FIELD_COUNT] = [
        Property::TenantId,
        Property::TenantDisplayName,
        Property::CompliancePolicyId,
        Property::CompliancePolicyName,
        Property::CompliancePolicyType,
        Property::CompliancePolicyPlatform,
        Property::NumberOfCompliantDevices,
        Property::NumberOfNonCompliantDevices,
        Property::NumberOfErrorDevices,
        Property::PolicyModifiedDateTime,
        Property::LastRefreshedDateTime,
    ];

    /// Returns the property's name in `view`.
    pub fn name(self, view: View) -> &'static str {
        match (self, view) {
            (Property::TenantId, View::Seed) => "organizationId",
            (Property::TenantId, View::Graph) => "tenantId",
            (Property::TenantDisplayName, View::Seed) => "organizationDisplayName",
            (Property::TenantDisplayName, View::Graph) => "tenantDisplayName",
            (Property::Id, _) => "id",
            (Property::CompliancePolicyId, _) => "compliancePolicyId",
            (Property::CompliancePolicyName, _) => "compliancePolicyName",
            (Property::CompliancePolicyType, _) => "compliancePolicyType",
            (Property::CompliancePolicyPlatform, _) => "compliancePolicyPlatform",
            (Property::NumberOfCompliantDevices, _) => "numberOfCompliantDevices",
            (Property::NumberOfNonCompliantDevices, _) => "numberOfNonCompliantDevices",
            (Property::NumberOfErrorDevices, _) => "numberOfErrorDevices",
            (Property::PolicyModifiedDateTime, _) => "policyModifiedDateTime",
            (Property::LastRefreshedDateTime, _) => "lastRefreshedDateTime",
        }
    }

    /// Returns the property's EDM type.
    pub fn edm_type(self) -> EdmType {
        match self {
            Property::Id
            | Property::TenantId
            | Property::TenantDisplayName
            | Property::CompliancePolicyId
            | Property::CompliancePolicyName
            | Property::CompliancePolicyType
            | Property::CompliancePolicyPlatform => EdmType::String,
            Property::NumberOfCompliantDevices
            | Property::NumberOfNonCompliantDevices
            | Property::NumberOfErrorDevices => EdmType::Int64,
            Property::PolicyModifiedDateTime | Property::LastRefreshedDateTime => {
                EdmType::DateTimeOffset
            }
        }
    }

    /// Returns the position of a non-key property in [`Property::FIELDS`], or `None` for the
    /// key.
    pub fn field_index(self) -> Option<usize> {
        Property::FIELDS.iter().position(|p| *p == self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_differ_only_in_the_tenant_names() {
        for property in Property::ALL {
            let (seed, graph) = (property.name(View::Seed), property.name(View::Graph));
            match property {
                Property::TenantId | Property::TenantDisplayName => assert_ne!(seed, graph),
                _ => assert_eq!(seed, graph),
            }
        }
    }

    #[test]
    fn property_lookup_is_case_sensitive_and_per_view() {
        assert_eq!(View::Seed.property("organizationId"), Some(Property::TenantId));
        assert_eq!(View::Graph.property("tenantId"), Some(Property::TenantId));
        assert_eq!(View::Graph.property("organizationId"), None);
        assert_eq!(View::Graph.property("TenantId"), None);
    }

    #[test]
    fn field_indexes_cover_every_non_key_property_once() {
        for (i, property) in Property::FIELDS.into_iter().enumerate() {
            assert_eq!(property.field_index(), Some(i));
        }
        assert_eq!(Property::Id.field_index(), None);
    }
}
