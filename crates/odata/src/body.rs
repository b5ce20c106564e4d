//! The rules that turn a request body into validated property values.
//!
//! A body is a JSON object whose members are the view's property names. Instance annotations
//! (any member name containing `@`) are ignored, except `@odata.type`, which must name the
//! view's own entity type, and `property@odata.type`, which must name the property's declared
//! type. Each value must have the JSON form of the property's EDM type:
//!
//! - `Edm.String`: a JSON string.
//! - `Edm.Int64`: a JSON integer from 0 to 9223372036854775807, or, when the request's
//!   `Content-Type` carries `IEEE754Compatible=true`, also a JSON string of decimal digits.
//! - `Edm.DateTimeOffset`: a JSON string in the form [`DateTimeOffset::parse`] accepts.
//!
//! `null` is accepted for any property the view does not require.

use std::fmt;

use crate::datetime::DateTimeOffset;
use crate::entity::{Fields, Value};
use crate::json::{self, JsonError, JsonNumber, JsonValue};
use crate::model::{EdmType, FIELD_COUNT, Property, View};

/// Options for reading a body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Accept Int64 values written as JSON strings, as `IEEE754Compatible=true` allows.
    pub int64_as_string: bool,
}

/// The properties a body gives, before the view's create or update rules apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntityInput {
    /// The key, when the body gives a non-empty string.
    pub id: Option<String>,
    /// Per field: `None` when absent, `Some(None)` for an explicit `null`.
    pub fields: [Option<Option<Value>>; FIELD_COUNT],
}

/// A body rejection. Each message is a full sentence for the client.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is not one well-formed JSON document, or it repeats a key.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The body is valid JSON but not an object.
    #[error("The request body must be a JSON object, but it is {0}.")]
    NotAnObject(&'static str),
    /// A member names no property of the view.
    #[error("{}", unknown_property_message(.name, *.view))]
    UnknownProperty {
        /// The member name as given.
        name: String,
        /// The view the body was sent to.
        view: View,
    },
    /// `@odata.type` names a different type.
    #[error("The @odata.type '{given}' does not match this entity set, which takes '#{expected}'.")]
    WrongEntityType {
        /// The value given.
        given: String,
        /// The type name of the view.
        expected: &'static str,
    },
    /// A value has the wrong JSON kind or is out of range for its property.
    #[error("The value of '{property}' is invalid: {reason}.")]
    InvalidValue {
        /// The property name in the view.
        property: &'static str,
        /// The problem found, as a clause that completes the message.
        reason: String,
    },
    /// Properties that the view requires on create are absent or `null`.
    #[error("{}", required_message(.missing, .null))]
    RequiredProperties {
        /// The required properties that are absent.
        missing: Vec<&'static str>,
        /// The required properties given as `null`.
        null: Vec<&'static str>,
    },
}

fn unknown_property_message(name: &str, view: View) -> String {
    let mut message =
        format!("The property '{name}' does not exist on type '{}'.", view.type_name());

    // Point a caller who mixed the two views' names to the name this view uses.
    let other = if view == View::Seed { View::Graph } else { View::Seed };
    if let Some(property) = other.property(name) {
        message.push_str(&format!(" This entity set names it '{}'.", property.name(view)));
    } else if let Some(property) =
        Property::ALL.into_iter().find(|p| p.name(view).eq_ignore_ascii_case(name))
    {
        message.push_str(&format!(
            " Property names are case-sensitive: did you mean '{}'?",
            property.name(view)
        ));
    }
    message
}

fn required_message(missing: &[&'static str], null: &[&'static str]) -> String {
    let describe = |names: &[&'static str], singular: &str, plural: &str| {
        let list = names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
        if names.len() == 1 {
            format!("the required property {list} {singular}")
        } else {
            format!("the required properties {list} {plural}")
        }
    };
    let parts: Vec<String> = [
        (!missing.is_empty()).then(|| describe(missing, "is missing", "are missing")),
        (!null.is_empty()).then(|| describe(null, "must not be null", "must not be null")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let sentence = parts.join(", and ");
    let mut characters = sentence.chars();
    let first = characters.next().map(|c| c.to_ascii_uppercase()).unwrap_or_default();
    format!("{first}{}.", characters.as_str())
}

/// Parses and checks a body sent to `view`, without applying the create rules.
pub fn decode(view: View, text: &[u8], options: ReadOptions) -> Result<EntityInput, BodyError> {
    let members = match json::parse(text)? {
        JsonValue::Object(members) => members,
        other => return Err(BodyError::NotAnObject(other.kind())),
    };

    let mut input = EntityInput::default();
    for (name, value) in members {
        if name == "@odata.type" {
            check_entity_type(view, &value)?;
            continue;
        }
        if let Some((property_name, annotation)) = name.split_once('@') {
            if annotation == "odata.type" {
                check_property_type(view, property_name, &value)?;
            }
            continue;
        }
        let Some(property) = view.property(&name) else {
            return Err(BodyError::UnknownProperty { name: name.into_owned(), view });
        };
        match property.field_index() {
            None => input.id = decode_id(value)?,
            Some(index) => {
                let decoded = decode_value(view, property, value, options)?;
                input.fields[index] = Some(decoded);
            }
        }
    }
    Ok(input)
}

/// The changes of a `PATCH`: per field, `None` to keep the stored value, `Some(None)` to set
/// it to null, `Some(Some(value))` to set it to `value`.
pub type Patch = [Option<Option<Value>>; FIELD_COUNT];

impl EntityInput {
    /// Applies the create rules of `view`: every required property must be present and not
    /// null, and absent ones become null.
    pub fn into_create(self, view: View) -> Result<(Option<String>, Fields), BodyError> {
        self.check_required(view, true)?;
        Ok((self.id, self.fields.map(Option::flatten)))
    }

    /// Applies the replace (`PUT`) rules of `view`, which are the create rules. A key in the
    /// body is ignored: the URL names the entity, and a key never changes.
    pub fn into_replacement(self, view: View) -> Result<Fields, BodyError> {
        self.into_create(view).map(|(_, fields)| fields)
    }

    /// Applies the update (`PATCH`) rules of `view`: a property the view requires may be left
    /// out, but not set to null. A key in the body is ignored, as for a replace.
    pub fn into_patch(self, view: View) -> Result<Patch, BodyError> {
        self.check_required(view, false)?;
        Ok(self.fields)
    }

    /// Checks the view's required properties: never null, and present when `all_present`.
    fn check_required(&self, view: View, all_present: bool) -> Result<(), BodyError> {
        let mut missing = Vec::new();
        let mut null = Vec::new();
        for (property, given) in Property::FIELDS.into_iter().zip(&self.fields) {
            match given {
                _ if !view.requires_on_create(property) => {}
                None if all_present => missing.push(property.name(view)),
                None => {}
                Some(None) => null.push(property.name(view)),
                Some(Some(_)) => {}
            }
        }
        if !missing.is_empty() || !null.is_empty() {
            return Err(BodyError::RequiredProperties { missing, null });
        }
        Ok(())
    }
}

fn check_entity_type(view: View, value: &JsonValue<'_>) -> Result<(), BodyError> {
    let given = match value {
        JsonValue::String(text) => text.as_ref(),
        other => {
            return Err(BodyError::WrongEntityType {
                given: other.kind().to_owned(),
                expected: view.type_name(),
            });
        }
    };
    // The two views' types are unrelated in `$metadata`, so each set takes only its own.
    match given.strip_prefix('#').unwrap_or(given) == view.type_name() {
        true => Ok(()),
        false => {
            Err(BodyError::WrongEntityType { given: given.to_owned(), expected: view.type_name() })
        }
    }
}

/// Checks a `property@odata.type` annotation: the property must exist in the view, and the
/// type must be its declared type, written as `#Int64`, `Int64`, `#Edm.Int64` or `Edm.Int64`.
fn check_property_type(view: View, name: &str, value: &JsonValue<'_>) -> Result<(), BodyError> {
    let Some(property) = view.property(name) else {
        return Err(BodyError::UnknownProperty { name: name.to_owned(), view });
    };
    let declared = property.edm_type().name();
    let matches = match value {
        JsonValue::String(text) => {
            let bare = text.strip_prefix('#').unwrap_or(text);
            bare == declared || Some(bare) == declared.strip_prefix("Edm.")
        }
        _ => false,
    };
    match matches {
        true => Ok(()),
        false => Err(BodyError::InvalidValue {
            property: property.name(view),
            reason: format!("its @odata.type annotation must be '#{declared}' or be left out"),
        }),
    }
}

/// The maximum length of any other string property, in UTF-8 bytes. Several string columns are
/// indexed, and PostgreSQL refuses an index entry over 2,704 bytes, so a longer value would be
/// stored by SQLite and rejected by PostgreSQL; both stores take the same values.
pub const MAX_STRING_BYTES: usize = 1024;

/// The maximum length of an `id`, in UTF-8 bytes, so that every key fits in a URL and a
/// `Location` header.
pub const MAX_ID_BYTES: usize = 1024;

/// The reason a string with U+0000 is rejected. PostgreSQL text cannot contain that character,
/// so neither store accepts it, and both stores contain the same strings.
const NUL_REASON: &str = "it contains the character U+0000, which no string value may contain";

fn decode_id(value: JsonValue<'_>) -> Result<Option<String>, BodyError> {
    match value {
        JsonValue::Null => Ok(None),
        JsonValue::String(text) if text.is_empty() => Ok(None),
        JsonValue::String(text) if text.len() > MAX_ID_BYTES => Err(BodyError::InvalidValue {
            property: "id",
            reason: format!("it is {} bytes long, and the maximum is {MAX_ID_BYTES}", text.len()),
        }),
        JsonValue::String(text) if text.contains('\0') => {
            Err(BodyError::InvalidValue { property: "id", reason: NUL_REASON.to_owned() })
        }
        JsonValue::String(text) => Ok(Some(text.into_owned())),
        other => Err(BodyError::InvalidValue {
            property: "id",
            reason: format!("expected a string, but it is {}", other.kind()),
        }),
    }
}

fn decode_value(
    view: View,
    property: Property,
    value: JsonValue<'_>,
    options: ReadOptions,
) -> Result<Option<Value>, BodyError> {
    let name = property.name(view);
    let invalid = |reason: String| BodyError::InvalidValue { property: name, reason };

    if value == JsonValue::Null {
        return Ok(None);
    }
    let decoded = match (property.edm_type(), value) {
        (EdmType::String, JsonValue::String(text)) if text.contains('\0') => {
            return Err(invalid(NUL_REASON.to_owned()));
        }
        (EdmType::String, JsonValue::String(text)) if text.len() > MAX_STRING_BYTES => {
            return Err(invalid(format!(
                "it is {} bytes long, and the maximum is {MAX_STRING_BYTES}",
                text.len()
            )));
        }
        (EdmType::String, JsonValue::String(text)) => Value::String(text.into_owned()),
        (EdmType::Int64, JsonValue::Number(number)) => {
            Value::Int64(count_from_number(number).map_err(invalid)?)
        }
        (EdmType::Int64, JsonValue::String(text)) if options.int64_as_string => {
            Value::Int64(count_from_text(&text).map_err(invalid)?)
        }
        (EdmType::Int64, JsonValue::String(_)) => {
            return Err(invalid(
                "expected a JSON integer; an Int64 given as a string is accepted only with \
                 'IEEE754Compatible=true' in the Content-Type"
                    .to_owned(),
            ));
        }
        (EdmType::DateTimeOffset, JsonValue::String(text)) => {
            let instant = DateTimeOffset::parse(&text).map_err(|error| {
                invalid(format!(
                    "'{text}' is not a DateTimeOffset such as 2024-03-01T07:30:00Z ({error})"
                ))
            })?;
            Value::DateTimeOffset(instant)
        }
        (edm_type, other) => {
            return Err(invalid(format!(
                "expected {}, but it is {}",
                expected_form(edm_type),
                other.kind()
            )));
        }
    };
    Ok(Some(decoded))
}

fn expected_form(edm_type: EdmType) -> &'static str {
    match edm_type {
        EdmType::String => "a string",
        EdmType::Int64 => "an integer from 0 to 9223372036854775807",
        EdmType::DateTimeOffset => "a DateTimeOffset string such as 2024-03-01T07:30:00Z",
    }
}

/// The range every device counter must be in.
const COUNT_RANGE: &str = "from 0 to 9223372036854775807";

fn count_from_number(number: JsonNumber) -> Result<i64, String> {
    match number {
        JsonNumber::Unsigned(value) => i64::try_from(value)
            .map_err(|_| format!("{value} is out of range; a count must be {COUNT_RANGE}")),
        JsonNumber::Negative(value) => {
            Err(format!("{value} is negative; a count must be {COUNT_RANGE}"))
        }
        // JSON integers past the u64 range arrive as doubles, and only approximately, so they
        // are shown in exponent form rather than as digits the client did not write.
        JsonNumber::Float(value) if value.fract() == 0.0 && value.abs() >= TWO_TO_THE_63 => {
            let reason = if value < 0.0 { "negative" } else { "out of range" };
            Err(format!("{value:e} is {reason}; a count must be {COUNT_RANGE}"))
        }
        JsonNumber::Float(value) => {
            Err(format!("{} is not an integer {COUNT_RANGE}", FloatText(value)))
        }
    }
}

/// 2^63, the first integer past the Int64 range, as a double.
const TWO_TO_THE_63: f64 = 9_223_372_036_854_775_808.0;

fn count_from_text(text: &str) -> Result<i64, String> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{text}' is not an integer {COUNT_RANGE}"));
    }
    digits
        .parse::<i64>()
        .map_err(|_| format!("'{text}' is out of range; a count must be {COUNT_RANGE}"))
}

/// Writes a float the way the client most likely wrote it.
struct FloatText(f64);

impl fmt::Display for FloatText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.fract() == 0.0 && self.0.abs() < 1e21 {
            write!(f, "{:.1}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_past_u64_are_out_of_range() {
        let huge = count_from_number(JsonNumber::Float(1e20)).unwrap_err();
        assert_eq!(huge, "1e20 is out of range; a count must be from 0 to 9223372036854775807");
        let negative = count_from_number(JsonNumber::Float(-1e20)).unwrap_err();
        assert!(negative.starts_with("-1e20 is negative;"), "{negative}");
        let fraction = count_from_number(JsonNumber::Float(12.5)).unwrap_err();
        assert!(fraction.starts_with("12.5 is not an integer"), "{fraction}");
    }

    const SEED_EXAMPLE: &str = r##"{
        "@odata.type": "#microsoft.management.services.api.aggregatedPolicyCompliance",
        "organizationId": "4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a",
        "organizationDisplayName": "Contoso Ltd",
        "compliancePolicyId": "0c4bd1d4-1d3f-4b86-8b93-3f0a5d0e5c21",
        "compliancePolicyName": "Windows 10 baseline",
        "compliancePolicyType": "deviceCompliancePolicy",
        "compliancePolicyPlatform": "windows10AndLater",
        "numberOfCompliantDevices": 120,
        "numberOfNonCompliantDevices": 7,
        "numberOfErrorDevices": 1,
        "policyModifiedDateTime": "2024-02-12T09:15:00Z",
        "lastRefreshedDateTime": "2024-03-01T07:30:00.1234567Z"
    }"##;

    fn create(view: View, text: &str, options: ReadOptions) -> Result<Fields, BodyError> {
        decode(view, text.as_bytes(), options)?.into_create(view).map(|(_, fields)| fields)
    }

    fn message(view: View, text: &str) -> String {
        create(view, text, ReadOptions::default()).unwrap_err().to_string()
    }

    #[test]
    fn seed_example_decodes_every_property() {
        let fields = create(View::Seed, SEED_EXAMPLE, ReadOptions::default()).unwrap();
        assert!(fields.iter().all(Option::is_some));
        assert_eq!(
            fields[Property::NumberOfCompliantDevices.field_index().unwrap()],
            Some(Value::Int64(120))
        );
    }

    #[test]
    fn patch_rejects_null_required_properties() {
        let input = decode(
            View::Seed,
            br#"{"organizationDisplayName":"Fabrikam"}"#,
            ReadOptions::default(),
        )
        .unwrap();
        let patch = input.into_patch(View::Seed).unwrap();
        assert_eq!(patch.iter().filter(|change| change.is_some()).count(), 1);
        let nulled =
            decode(View::Seed, br#"{"organizationDisplayName":null}"#, ReadOptions::default())
                .unwrap();
        let error = nulled.into_patch(View::Seed).unwrap_err().to_string();
        assert_eq!(error, "The required property 'organizationDisplayName' must not be null.");
        let graph =
            decode(View::Graph, br#"{"tenantDisplayName":null}"#, ReadOptions::default()).unwrap();
        assert_eq!(graph.into_patch(View::Graph).unwrap()[1], Some(None));
    }

    #[test]
    fn graph_view_accepts_an_empty_object() {
        let fields = create(View::Graph, "{}", ReadOptions::default()).unwrap();
        assert!(fields.iter().all(Option::is_none));
    }

    #[test]
    fn seed_view_names_every_missing_property() {
        let text = message(View::Seed, r#"{"organizationId":"x"}"#);
        assert!(text.starts_with("The required properties 'organizationDisplayName', "), "{text}");
        assert!(text.ends_with(" are missing."), "{text}");
        assert!(text.contains("'lastRefreshedDateTime'"));
        assert!(!text.contains("'organizationId'"));
    }

    #[test]
    fn seed_view_rejects_null_for_a_required_property() {
        let text = message(View::Seed, r#"{"organizationId":null}"#);
        assert!(text.starts_with("The required properties 'organizationDisplayName', "), "{text}");
        assert!(
            text.ends_with(", and the required property 'organizationId' must not be null."),
            "{text}"
        );
    }

    #[test]
    fn unknown_property_is_named_with_a_hint() {
        let text = message(View::Graph, r#"{"organizationId":"x"}"#);
        assert!(text.contains("'organizationId' does not exist"));
        assert!(text.contains("names it 'tenantId'"));
        let text = message(View::Graph, r#"{"TenantId":"x"}"#);
        assert!(text.contains("did you mean 'tenantId'"));
    }

    #[test]
    fn int64_rejects_non_counts() {
        for bad in ["12.5", "\"12\"", "true", "-1", "9223372036854775808", "1e3", "[1]"] {
            let body = format!(r#"{{"numberOfErrorDevices":{bad}}}"#);
            let text = message(View::Graph, &body);
            assert!(
                text.starts_with("The value of 'numberOfErrorDevices' is invalid"),
                "{bad}: {text}"
            );
        }
    }

    #[test]
    fn int64_past_2_pow_53_is_exact() {
        let fields = create(
            View::Graph,
            r#"{"numberOfErrorDevices":9007199254740993}"#,
            ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(
            fields[Property::NumberOfErrorDevices.field_index().unwrap()],
            Some(Value::Int64(9_007_199_254_740_993))
        );
    }

    #[test]
    fn int64_as_string_needs_ieee754_compatibility() {
        let body = r#"{"numberOfErrorDevices":"9223372036854775807"}"#;
        let options = ReadOptions { int64_as_string: true };
        let fields = create(View::Graph, body, options).unwrap();
        assert_eq!(
            fields[Property::NumberOfErrorDevices.field_index().unwrap()],
            Some(Value::Int64(i64::MAX))
        );
        for bad in ["\"-1\"", "\"1.0\"", "\"\"", "\"9223372036854775808\"", "\" 1\""] {
            let body = format!(r#"{{"numberOfErrorDevices":{bad}}}"#);
            assert!(create(View::Graph, &body, options).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn odata_type_must_name_this_entity_type() {
        let other = r##"{"@odata.type":"#microsoft.graph.user"}"##;
        assert!(message(View::Graph, other).contains("'#microsoft.graph.user'"));
        let seed_name =
            r##"{"@odata.type":"#microsoft.management.services.api.aggregatedPolicyCompliance"}"##;
        assert!(create(View::Graph, seed_name, ReadOptions::default()).is_err());
        let graph_name =
            r##"{"@odata.type":"#microsoft.graph.managedTenants.aggregatedPolicyCompliance"}"##;
        assert!(create(View::Graph, graph_name, ReadOptions::default()).is_ok());
        assert!(create(View::Graph, r#"{"@odata.type":5}"#, ReadOptions::default()).is_err());
    }

    #[test]
    fn other_annotations_are_ignored() {
        let body = r##"{"@odata.context":"x","tenantId@odata.type":"#String","@custom.thing":[1],"tenantId@custom.note":"n"}"##;
        assert!(create(View::Graph, body, ReadOptions::default()).is_ok());
    }

    #[test]
    fn property_type_annotations_must_match_the_declared_type() {
        for good in ["#Int64", "Int64", "#Edm.Int64", "Edm.Int64"] {
            let body = format!(r#"{{"numberOfErrorDevices@odata.type":"{good}"}}"#);
            assert!(create(View::Graph, &body, ReadOptions::default()).is_ok(), "{good}");
        }
        let wrong = message(View::Graph, r##"{"numberOfErrorDevices@odata.type":"#String"}"##);
        assert!(wrong.contains("'#Edm.Int64'"), "{wrong}");
        let unknown = message(View::Graph, r##"{"x@odata.type":"#String"}"##);
        assert!(unknown.contains("'x' does not exist"), "{unknown}");
    }

    #[test]
    fn dates_need_an_offset() {
        let text = message(View::Graph, r#"{"lastRefreshedDateTime":"2024-03-01T07:30:00"}"#);
        assert!(text.contains("lastRefreshedDateTime"), "{text}");
    }

    #[test]
    fn bodies_that_are_not_objects_are_rejected() {
        assert!(matches!(
            decode(View::Graph, b"[]", ReadOptions::default()),
            Err(BodyError::NotAnObject("an array"))
        ));
        assert!(matches!(
            decode(View::Graph, b"{\"tenantId\":1,\"tenantId\":1}", ReadOptions::default()),
            Err(BodyError::Json(_))
        ));
    }

    #[test]
    fn id_may_be_given_left_empty_or_null() {
        let given = decode(View::Graph, br#"{"id":"a/b'c"}"#, ReadOptions::default()).unwrap();
        assert_eq!(given.id.as_deref(), Some("a/b'c"));
        let empty = decode(View::Graph, br#"{"id":""}"#, ReadOptions::default()).unwrap();
        assert_eq!(empty.id, None);
        assert!(decode(View::Graph, br#"{"id":7}"#, ReadOptions::default()).is_err());
    }

    #[test]
    fn id_longer_than_the_maximum_is_rejected() {
        let longest = format!(r#"{{"id":"{}"}}"#, "é".repeat(MAX_ID_BYTES / 2));
        assert!(decode(View::Graph, longest.as_bytes(), ReadOptions::default()).is_ok());
        let too_long = format!(r#"{{"id":"{}"}}"#, "a".repeat(MAX_ID_BYTES + 1));
        let error = decode(View::Graph, too_long.as_bytes(), ReadOptions::default()).unwrap_err();
        assert!(error.to_string().contains("1025 bytes"), "{error}");
    }
}
